"""Accounts: users' trading accounts, assets, balances and the double-entry ledger."""
