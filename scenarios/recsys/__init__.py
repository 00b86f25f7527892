"""Sequential recommendation scenarios: RecBole atomic datasets, ml-100k built in, a text-format converter."""
