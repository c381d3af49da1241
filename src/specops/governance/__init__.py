"""How healthy the whole system is: the quality scoreboard and the delivery KPIs."""
