"""CSV import (issue 9): upload → map and preview → confirm → run in batches → undo.

- source.py: streaming CSV reading (encoding, delimiter, line numbers);
- parsing.py: dates (ISO, day/month, month/day) and amounts as exports write them;
- mapping.py: column guesses from Pipedrive/HubSpot/Salesforce/sample headers, stage
  guesses, spelling corrections, and the `Mapping` stored on a job;
- rows.py: a row → the deal it will become, and the gate walked along its history;
- preview.py: the scan of a whole file and the dry run the preview page shows;
- writers.py, bulk.py: saving a batch (set-based for new rows, services for changes);
- runner.py: the job loop (a transaction per batch, resumable), used by the Celery task
  `imports.run_import` (imports/tasks.py) and by `manage.py import_csv`;
- services.py, undo.py, forms.py: the job's life as the views and the command drive it.
"""
