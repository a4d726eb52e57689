"""NativeAuthenticator (sign-up, approved by an instructor) made to work on JupyterHub 6.

NativeAuthenticator 1.3 (the newest) was written for JupyterHub 4 and 5. Its log-in form
breaks on 6 in two ways, each a 500 error: it times the log-in with ``self.statsd``, which
JupyterHub 6 no longer has, and JupyterHub 6 renders a failed log-in through ``_render(...,
sync=True)``, a keyword its ``_render`` does not take. This log-in handler is NativeAuthenticator's
own, without the timer and with that keyword; the rest of NativeAuthenticator is used as it is.
"""
from jupyterhub.handlers.base import BaseHandler
from nativeauthenticator import NativeAuthenticator
from nativeauthenticator.handlers import LoginHandler as NativeLoginHandler
from tornado.escape import url_escape
from tornado.httputil import url_concat


class LoginHandler(NativeLoginHandler):
    def _render(self, login_error=None, username=None, sync=False, **_):
        next_url = self.get_argument("next", default="")
        return BaseHandler.render_template(
            self, "native-login.html", sync=sync,
            next=url_escape(next_url), username=username, login_error=login_error,
            custom_html=self.authenticator.custom_html, login_url=self.settings["login_url"],
            enable_signup=self.authenticator.enable_signup, two_factor_auth=self.authenticator.allow_2fa,
            authenticator_login_url=url_concat(self.authenticator.login_url(self.hub.base_url), {"next": next_url}),
        )

    async def post(self):
        data = {arg: self.get_argument(arg, strip=arg == "username") for arg in self.request.body_arguments
                if arg != "_xsrf"}
        user = await self.login_user(data)
        if user:
            self._jupyterhub_user = user
            self.redirect(self.get_next_url(user))
            return
        error = "Invalid username or password."
        username = data.get("username", "")
        known = self.authenticator.get_user(username)
        if known is not None and known.is_valid_password(data.get("password", "")) and not known.is_authorized:
            error = f"User {username} has not been approved by an instructor yet."
        self.set_status(403)
        self.finish(await self._render(login_error=error, username=username))


class CourseNativeAuthenticator(NativeAuthenticator):
    def get_handlers(self, app):
        return [(path, LoginHandler if path == r"/login" else handler)
                for path, handler in super().get_handlers(app)]
