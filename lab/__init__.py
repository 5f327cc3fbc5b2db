"""Real SIP peers (Kamailio, sipp, baresip, dumpcap) driven as test fixtures."""
