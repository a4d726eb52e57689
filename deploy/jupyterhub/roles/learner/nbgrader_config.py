"""nbgrader for a learner's server on the course hub: the exchange, and private submissions."""
import importlib.util
import os

from nbgrader.exchange.default import ExchangeSubmit

c = get_config()  # noqa: F821 - provided by nbgrader

c.CourseDirectory.course_id = "transformers-piece-by-piece"
c.Exchange.root = os.environ.get("COURSE_EXCHANGE", "/srv/nbgrader/exchange")

_spec = importlib.util.spec_from_file_location(
    "posix_acl", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "posix_acl.py"))
posix_acl = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(posix_acl)


class PrivateSubmit(ExchangeSubmit):
    """A submission readable by its learner and the course's staff only.

    nbgrader leaves it readable by everyone, hidden by a random folder name. Here it becomes
    the learner's alone (700/600) plus an ACL for the group of the exchange's inbound folder:
    the instructor who released the assignment, or a staff group the class gave that folder.
    """

    def copy_files(self):
        super().copy_files()
        staff = os.stat(self.inbound_path).st_gid
        dest = os.path.join(self.inbound_path, self.assignment_filename)
        try:
            for folder, _, files in os.walk(dest):
                for name in files:
                    os.chmod(os.path.join(folder, name), 0o600)
                    posix_acl.grant(os.path.join(folder, name), posix_acl.READ, gid=staff)
                os.chmod(folder, 0o700)  # rwx for staff: they may remove old submissions
                posix_acl.grant(folder, posix_acl.READ | posix_acl.WRITE | posix_acl.EXECUTE, gid=staff)
        except posix_acl.NoACLs:
            self.log.warning("The exchange keeps no POSIX ACLs: this submission is hidden by its "
                             "random name only, as nbgrader does by default.")
            self.set_perms(dest, fileperms=0o644, dirperms=0o755)


c.ExchangeFactory.submit = PrivateSubmit
