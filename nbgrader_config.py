"""nbgrader configuration for instructors working in this repository.

solutions/ holds the instructor notebooks (nbgrader's "source"), exercises/ the
generated learner notebooks (nbgrader's "release"). `make release` regenerates them.
"""
import os

c = get_config()  # noqa: F821 - provided by nbgrader

c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.course_id = "transformers-piece-by-piece"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
# Kernels that hang must not stall a grading run.
c.ExecutePreprocessor.timeout = 120
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
