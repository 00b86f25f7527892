"""Sequential recommendation on RecBole: MCLRec, its augmenters, losses and bilevel trainer."""
