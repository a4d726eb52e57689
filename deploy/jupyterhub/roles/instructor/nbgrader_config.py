"""nbgrader for an instructor's server on the course hub: the exchange and the course folder.

The course folder is a clone of the course repository in the instructor's home; its own
nbgrader_config.py (solutions/ as source, exercises/ as release) applies when nbgrader runs there.
"""
import os

c = get_config()  # noqa: F821 - provided by nbgrader

c.CourseDirectory.course_id = "transformers-piece-by-piece"
c.CourseDirectory.root = os.path.expanduser(os.environ.get("COURSE_ROOT", "~/transformers-piece-by-piece"))
c.Exchange.root = os.environ.get("COURSE_EXCHANGE", "/srv/nbgrader/exchange")
