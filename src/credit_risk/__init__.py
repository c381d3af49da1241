"""The credit-risk example project: a synthetic data generator specops trains on."""
