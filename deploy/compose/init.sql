-- A low-privilege role and database for run_query (QUERY_DATABASE_URL): never the service's superuser.
CREATE ROLE taskservice_query LOGIN PASSWORD 'query' NOSUPERUSER NOCREATEDB NOCREATEROLE;
CREATE DATABASE sandbox OWNER postgres;
GRANT CONNECT ON DATABASE sandbox TO taskservice_query;
