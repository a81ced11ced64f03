//! The cache on Redis Cluster (placeholder until the cluster tests land).
