-- Admin keys used to administer every tenant. Now an admin manages its own tenant only and the
-- instance-wide role is `owner`. The keys that administered the instance before were the
-- bootstrap tenant's admins: they become owners; other tenants' admins keep their tenant.
UPDATE api_keys SET role = 'owner' WHERE role = 'admin' AND tenant_id = 'default';
