"""Operating and monitoring: Lab 07 (coming) fills this stage."""
