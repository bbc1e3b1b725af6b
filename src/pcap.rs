//! A minimal pcap writer (in progress).
