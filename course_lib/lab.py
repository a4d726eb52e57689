"""``make lab``: JupyterLab on ``exercises/``, in the language of the learner's locale.

JupyterLab picks its language from a setting (``@jupyterlab/translation-extension:plugin``,
``locale``); left at "default", it follows the server's system locale, which a machine that
never generated ``ko_KR.UTF-8`` does not have. So when ``LC_ALL``, ``LC_MESSAGES`` or ``LANG``
asks for a language whose JupyterLab language pack is installed
(``jupyterlab-language-pack-ko-kr`` comes with the course's ``lab`` extra), the launcher sets
that locale in a settings folder of the course's own (``.venv/jupyterlab-settings/<locale>``).
Everything else is plain ``jupyter lab``.

    LANG=ko_KR.UTF-8 make lab       # JupyterLab in Korean
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SETTING = Path("@jupyterlab") / "translation-extension" / "plugin.jupyterlab-settings"


def requested_locale(environ: dict | None = None) -> str | None:
    """The locale the environment asks for, in JupyterLab's spelling (``ko_KR``), or None."""
    environ = os.environ if environ is None else environ
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name, "").split(".")[0].split("@")[0]
        if value:
            return None if value in ("C", "POSIX") else value
    return None


def installed_locales() -> set[str]:
    from jupyterlab_server.translation_utils import get_language_packs

    packs, _ = get_language_packs()
    return set(packs)


def lab_command(environ: dict | None = None, settings_root: Path | None = None) -> list[str]:
    """The ``jupyter lab`` command line for this environment (writing its language setting)."""
    command = [str(Path(sys.executable).parent / "jupyter"), "lab", f"--notebook-dir={REPO / 'exercises'}"]
    if hasattr(os, "getuid") and os.getuid() == 0:
        command.append("--allow-root")
    wanted = requested_locale(environ)
    if wanted and wanted not in ("en", "en_US") and wanted in installed_locales():
        settings = (settings_root or REPO / ".venv" / "jupyterlab-settings") / wanted
        (settings / SETTING).parent.mkdir(parents=True, exist_ok=True)
        (settings / SETTING).write_text(json.dumps({"locale": wanted}))
        command.append(f"--LabApp.user_settings_dir={settings}")
    return command


if __name__ == "__main__":
    command = lab_command() + sys.argv[1:]
    os.execv(command[0], command)
