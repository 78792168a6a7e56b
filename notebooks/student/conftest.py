# The student notebooks' checks fail until the exercises are answered, by design: nbmake
# (`make test` runs `pytest --nbmake notebooks`) must not execute them.
# tests/test_notebook_student.py checks them instead.
collect_ignore_glob = ["*.ipynb"]
