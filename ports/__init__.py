"""The boundary between the workflows and the outside systems their activities reach (issue 22 item 1).

One module per outside system: its request and response models (the payloads recorded in histories), its
activity names, and one typed call per activity (an `ActivityPort`) carrying the timeout and retry policy the
workflows use. Workflows call the ports; activities register under the ports' names and take and return their
models. Nothing here does I/O: the worker passes this package through the workflow sandbox (worker.py), and it
imports only the contract and the rules of the workflows (tests/test_import_boundary.py).
"""
