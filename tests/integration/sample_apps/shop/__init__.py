"""A shop: the sample application of the autogenerate tests."""
