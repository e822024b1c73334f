"""Import paths PocketCoffea users know for custom executor modules (``--executor-custom-setup``)."""
