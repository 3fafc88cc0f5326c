-- Signing secrets written in SQL meet the same rule as through the admin API: a Standard
-- Webhooks secret is `whsec_` + base64 of 24 to 64 bytes (the API refused shorter ones since
-- issue 15; outbox.add_endpoint and outbox.rotate_secret did not). A trigger checks only the
-- secrets a statement adds, so an endpoint created before this migration with a shorter
-- secret keeps working (and can still be edited) until its secret is rotated. The value is
-- never quoted in the error.
CREATE FUNCTION outbox.check_new_secrets() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    s text;
    n integer;
BEGIN
    FOREACH s IN ARRAY NEW.secrets LOOP
        CONTINUE WHEN TG_OP = 'UPDATE' AND s = ANY (OLD.secrets);
        IF s IS NULL OR s !~ '^whsec_[A-Za-z0-9+/]+={0,2}$' THEN
            RAISE EXCEPTION 'secret must look like whsec_<base64 of 24 to 64 bytes>, got something else'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        BEGIN
            n := length(decode(substr(s, 7), 'base64'));
        EXCEPTION WHEN others THEN
            RAISE EXCEPTION 'secret must look like whsec_<base64 of 24 to 64 bytes>: its base64 does not decode (%)', SQLERRM
                USING ERRCODE = 'invalid_parameter_value';
        END;
        IF n NOT BETWEEN 24 AND 64 THEN
            RAISE EXCEPTION 'secret must be 24 to 64 bytes after whsec_ (Standard Webhooks), got %', n
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
    RETURN NEW;
END
$$;

CREATE TRIGGER endpoints_check_new_secrets
    BEFORE INSERT OR UPDATE OF secrets ON outbox.endpoints
    FOR EACH ROW EXECUTE FUNCTION outbox.check_new_secrets();
