"""The Python client of the API: `Client`, `AsyncClient`, task handles, messages and errors."""
