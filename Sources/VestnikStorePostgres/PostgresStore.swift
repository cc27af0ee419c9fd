// The PostgreSQL adapter (issue #3).
