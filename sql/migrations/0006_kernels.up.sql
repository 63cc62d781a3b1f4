-- pgembed catalog, version 6: the SQL twins of pgembed's C kernels get a schema of their own (their functions
-- are in sql/functions/, re-applied after the migrations). pgembed's functions of the same names call the
-- kernels where the extension pgembed_kernels is installed, the twins elsewhere (pgembed.bind_kernels()).
CREATE SCHEMA pgembed_twins;
GRANT USAGE ON SCHEMA pgembed_twins TO PUBLIC;
