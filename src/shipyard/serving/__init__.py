"""Online serving: REST (ours, MLflow, OIP v2) and gRPC (OIP v2) over one predict path."""
