/* test_auth.c: users, tokens and limits of the daemon (daemon/sha256.c, daemon/auth.c and the
 * user/token rows of daemon/store.c): SHA-256 against the FIPS 180-4 vectors (and every padding
 * boundary), token format and parsing, create / verify / revoke through the store (no clear token
 * in the database file), the constant-time compare, Bearer headers, the loopback rule, and the
 * limit estimates and messages (weights, steps, disk, per-user count). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "npy.h"
#include "sha256.h"
#include "spec.h"
#include "store.h"
#include "testutil.h"

#define SCHEMA_DIR BOLTZ_SOURCE_DIR "/schema"

static void hex(const uint8_t *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", d[i]);
}

static void expect_sha(const void *data, size_t n, const char *want)
{
    uint8_t h[32];
    char got[65];
    sha256(data, n, h);
    hex(h, 32, got);
    cr_assert_str_eq(got, want, "SHA-256 of %zu bytes", n);
}

/* ---- SHA-256 ---- */

Test(sha256, fips_180_4_vectors)
{
    expect_sha("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect_sha("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    expect_sha(m448, strlen(m448), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    const char *m896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrs"
                       "mnopqrstnopqrstu";
    expect_sha(m896, strlen(m896), "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
    char *million = malloc(1000000);
    cr_assert_not_null(million);
    memset(million, 'a', 1000000);
    expect_sha(million, 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(million);
}

Test(sha256, padding_boundaries)
{
    static const struct { size_t n; const char *h; } v[] = {
        {55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
        {56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
        {63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
        {64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
        {65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"},
        {119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
        {120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c"},
    };
    char a[128];
    memset(a, 'a', sizeof a);
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) expect_sha(a, v[i].n, v[i].h);
}

Test(sha256, streaming_equals_one_shot)
{
    char data[1000];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (char)(i * 7 + 3);
    uint8_t one[32], many[32];
    sha256(data, sizeof data, one);
    for (size_t chunk = 1; chunk <= 130; chunk += 13) {
        sha256_ctx c;
        sha256_init(&c);
        for (size_t off = 0; off < sizeof data; off += chunk)
            sha256_update(&c, data + off, off + chunk <= sizeof data ? chunk : sizeof data - off);
        sha256_final(&c, many);
        cr_assert_eq(memcmp(one, many, 32), 0, "chunk %zu", chunk);
    }
}

/* ---- token format ---- */

Test(token, generate_and_parse)
{
    char t1[AUTH_TOKEN_LEN + 1], t2[AUTH_TOKEN_LEN + 1];
    int64_t k1 = 0, k2 = 0, parsed = 0;
    bz_err e = {0};
    cr_assert_eq(auth_token_generate(t1, &k1, &e), 0, "%s", e.msg);
    cr_assert_eq(auth_token_generate(t2, &k2, &e), 0, "%s", e.msg);
    cr_assert_eq(strlen(t1), 67);
    cr_assert_eq(strncmp(t1, "bz_", 3), 0);
    cr_assert_eq(strspn(t1 + 3, "0123456789abcdef"), 64);
    cr_assert_str_neq(t1, t2);
    cr_assert(auth_token_parse(t1, &parsed));
    cr_assert_eq(parsed, k1);
    char prefix[9];
    memcpy(prefix, t1 + 3, 8);
    prefix[8] = 0;
    cr_assert_eq(k1, strtoll(prefix, NULL, 16), "the lookup key is the first 8 hex digits");
    cr_assert_gt(k1, 0);
}

Test(token, malformed_tokens_are_rejected)
{
    char t[AUTH_TOKEN_LEN + 1];
    int64_t k;
    bz_err e = {0};
    cr_assert_eq(auth_token_generate(t, &k, &e), 0);
    char bad[AUTH_TOKEN_LEN + 8];
    cr_assert_not(auth_token_parse(NULL, &k));
    cr_assert_not(auth_token_parse("", &k));
    snprintf(bad, sizeof bad, "%.66s", t); /* one short */
    cr_assert_not(auth_token_parse(bad, &k));
    snprintf(bad, sizeof bad, "%sa", t); /* one long */
    cr_assert_not(auth_token_parse(bad, &k));
    snprintf(bad, sizeof bad, "%s", t);
    bad[0] = 'B';
    cr_assert_not(auth_token_parse(bad, &k));
    snprintf(bad, sizeof bad, "%s", t);
    bad[40] = 'G';
    cr_assert_not(auth_token_parse(bad, &k));
    snprintf(bad, sizeof bad, "%s", t);
    bad[40] = 'A'; /* upper case is not what we issue */
    cr_assert_not(auth_token_parse(bad, &k));
    snprintf(bad, sizeof bad, "bz_00000000%s", t + 11); /* key 0 is never issued */
    cr_assert_not(auth_token_parse(bad, &k));
}

Test(token, constant_time_compare)
{
    uint8_t a[32], b[32];
    for (int i = 0; i < 32; i++) a[i] = b[i] = (uint8_t)(i * 31);
    cr_assert(auth_ct_equal(a, b, 32));
    cr_assert(auth_ct_equal(a, b, 0));
    for (int i = 0; i < 32; i += 31) {
        b[i] ^= 0x80;
        cr_assert_not(auth_ct_equal(a, b, 32), "difference at byte %d", i);
        b[i] ^= 0x80;
    }
    b[17] ^= 1;
    cr_assert_not(auth_ct_equal(a, b, 32));
}

Test(token, bearer_header)
{
    cr_assert_str_eq(auth_bearer("Bearer bz_x"), "bz_x");
    cr_assert_str_eq(auth_bearer("  bearer \t bz_y"), "bz_y");
    cr_assert_null(auth_bearer(NULL));
    cr_assert_null(auth_bearer("Basic dXNlcjpwdw=="));
    cr_assert_null(auth_bearer("Bearer"));
    cr_assert_null(auth_bearer("Bearer   "));
    cr_assert_null(auth_bearer("Bearerbz_x"));
}

Test(token, names)
{
    cr_assert(auth_name_valid("alice"));
    cr_assert(auth_name_valid("a.b-c_d@lab"));
    cr_assert_not(auth_name_valid(""));
    cr_assert_not(auth_name_valid("a b"));
    cr_assert_not(auth_name_valid("x/y"));
    char long_name[80];
    memset(long_name, 'x', 64);
    long_name[64] = 0;
    cr_assert_not(auth_name_valid(long_name));
    long_name[63] = 0;
    cr_assert(auth_name_valid(long_name));
}

/* ---- through the store ---- */

static char g_dir[256], g_db[512];

static store *open_store(void)
{
    cr_assert_not_null(tu_mkdtemp(g_dir, sizeof g_dir));
    snprintf(g_db, sizeof g_db, "%s/boltzd.db", g_dir);
    store *s = NULL;
    bz_err e = {0};
    cr_assert_eq(store_open(&s, g_db, SCHEMA_DIR, &e), 0, "%s", e.msg);
    return s;
}

/* Does a file hold the bytes of needle? A missing file holds nothing. */
static bool file_contains(const char *path, const char *needle)
{
    size_t n = 0;
    char *data = tu_read_file(path, &n);
    if (!data) return false;
    bool found = memmem(data, n, needle, strlen(needle)) != NULL;
    free(data);
    return found;
}

Test(store_auth, users)
{
    store *s = open_store();
    bz_err e = {0};
    user_row u;
    cr_assert_eq(store_user_add(s, "alice", false, &u, &e), 0, "%s", e.msg);
    cr_assert_gt(u.id, 0);
    cr_assert_eq(store_user_add(s, "root", true, NULL, &e), 0, "%s", e.msg);
    cr_assert_eq(store_user_add(s, "alice", true, NULL, &e), BZ_ESTATE);
    cr_assert(strstr(e.msg, "alice") && strstr(e.msg, "exists"), "%s", e.msg);
    cr_assert_eq(store_user_get(s, "root", &u, &e), 0);
    cr_assert(u.is_admin);
    cr_assert_eq(store_user_get(s, "bob", &u, &e), BZ_EINVAL);
    cr_assert(strstr(e.msg, "bob"), "%s", e.msg);
    user_row *rows = NULL;
    int64_t n = 0;
    cr_assert_eq(store_user_list(s, &rows, &n, &e), 0);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(rows[0].name, "alice");
    cr_assert_not(rows[0].is_admin);
    free(rows);
    store_close(s);
}

Test(store_auth, create_verify_revoke)
{
    store *s = open_store();
    bz_err e = {0};
    cr_assert_eq(store_user_add(s, "alice", false, NULL, &e), 0);
    cr_assert_eq(store_user_add(s, "root", true, NULL, &e), 0);
    char ta[AUTH_TOKEN_LEN + 1], tr[AUTH_TOKEN_LEN + 1];
    token_row ra, rr;
    cr_assert_eq(auth_token_create(s, "alice", ta, &ra, &e), 0, "%s", e.msg);
    cr_assert_eq(auth_token_create(s, "root", tr, &rr, &e), 0, "%s", e.msg);
    cr_assert_eq(auth_token_create(s, "nobody", tr + 0, &rr, &e), BZ_EINVAL);
    cr_assert_eq(auth_token_create(s, "root", tr, &rr, &e), 0, "%s", e.msg);

    auth_identity who;
    cr_assert_eq(auth_verify(s, ta, &who, &e), 0, "%s", e.msg);
    cr_assert_str_eq(who.user, "alice");
    cr_assert_not(who.is_admin);
    cr_assert_eq(who.token_id, ra.id);
    cr_assert_eq(auth_verify(s, tr, &who, &e), 0, "%s", e.msg);
    cr_assert_str_eq(who.user, "root");
    cr_assert(who.is_admin);

    /* Wrong: the right lookup key with another secret part; an unknown key; malformed. */
    char wrong[AUTH_TOKEN_LEN + 1];
    snprintf(wrong, sizeof wrong, "%s", ta);
    wrong[AUTH_TOKEN_LEN - 1] = wrong[AUTH_TOKEN_LEN - 1] == '0' ? '1' : '0';
    cr_assert_eq(auth_verify(s, wrong, &who, &e), BZ_EINVAL);
    cr_assert(strstr(e.msg, "invalid token"), "%s", e.msg);
    snprintf(wrong, sizeof wrong, "%s", ta);
    wrong[3] = wrong[3] == 'f' ? 'e' : 'f';
    cr_assert_eq(auth_verify(s, wrong, &who, &e), BZ_EINVAL);
    cr_assert_eq(auth_verify(s, "bz_nope", &who, &e), BZ_EINVAL);
    cr_assert(strstr(e.msg, "malformed"), "%s", e.msg);

    /* Listed without the secret; revoked once; then refused. */
    token_row *rows = NULL;
    int64_t n = 0;
    cr_assert_eq(store_token_list(s, ra.user_id, &rows, &n, &e), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(rows[0].id, ra.id);
    cr_assert_eq(rows[0].revoked_ms, 0);
    free(rows);
    cr_assert_eq(store_token_revoke(s, ra.id, &e), 0, "%s", e.msg);
    cr_assert_eq(store_token_revoke(s, ra.id, &e), BZ_ESTATE);
    cr_assert_eq(store_token_revoke(s, 12345, &e), BZ_EINVAL);
    cr_assert_eq(auth_verify(s, ta, &who, &e), BZ_EINVAL);
    cr_assert(strstr(e.msg, "revoked"), "%s", e.msg);
    cr_assert_eq(auth_verify(s, tr, &who, &e), 0, "the other user's token still works");

    /* The stored hash is SHA-256(salt || token); neither the token nor its secret part is stored. */
    token_row got;
    cr_assert_eq(store_token_get(s, rr.id, &got, &e), 0);
    uint8_t h[32];
    auth_token_hash(got.salt, tr, h);
    cr_assert_eq(memcmp(h, got.hash, 32), 0);
    store_close(s);
    char wal[600];
    snprintf(wal, sizeof wal, "%s-wal", g_db);
    cr_assert_not(file_contains(g_db, ta) || file_contains(wal, ta), "a clear token in the store");
    cr_assert_not(file_contains(g_db, tr + 11) || file_contains(wal, tr + 11), "the secret part in the store");
}

/* ---- listen address ---- */

Test(listen, loopback_rule)
{
    cr_assert(auth_host_is_loopback("127.0.0.1"));
    cr_assert(auth_host_is_loopback("127.3.2.1"));
    cr_assert(auth_host_is_loopback("::1"));
    cr_assert(auth_host_is_loopback("localhost"));
    cr_assert_not(auth_host_is_loopback("0.0.0.0"));
    cr_assert_not(auth_host_is_loopback("::"));
    cr_assert_not(auth_host_is_loopback(""));
    cr_assert_not(auth_host_is_loopback("10.1.2.3"));
    cr_assert_not(auth_host_is_loopback("128.0.0.1"));

    bz_config c;
    memset(&c, 0, sizeof c);
    bz_err e = {0};
    snprintf(c.listen_host, sizeof c.listen_host, "0.0.0.0");
    cr_assert_eq(auth_check_listen(&c, &e), BZ_EINVAL);
    cr_assert(strstr(e.msg, "refusing to listen on 0.0.0.0 without auth: set auth = on"), "%s", e.msg);
    c.auth = true;
    cr_assert_eq(auth_check_listen(&c, &e), 0);
    c.auth = false;
    snprintf(c.listen_host, sizeof c.listen_host, "127.0.0.1");
    cr_assert_eq(auth_check_listen(&c, &e), 0);
}

/* ---- limits ---- */

/* The small spin problem of tests/e2e: 40 inputs, hidden [12, 8], 4 classes, bias: 632 weights. */
static bz_spec *spec_of(const char *T, long long steps, long long samples_every)
{
    char text[1024];
    snprintf(text, sizeof text,
             "{\"dataset\": {\"kind\": \"spin\", \"n_in\": 40, \"classes\": 4, \"train\": 300, \"test\": 200},"
             " \"model\": {\"hidden\": [12, 8], \"bias\": true},"
             " \"sampler\": {\"method\": \"pl\", \"T\": %s, \"steps\": %lld},"
             " \"samples\": {\"every\": %lld}, \"checkpoint\": {\"every\": 500, \"keep\": 3}}",
             T, steps, samples_every);
    bz_spec *sp = malloc(sizeof *sp);
    bz_err e = {0};
    cr_assert_eq(spec_parse(text, sp, &e), 0, "%s", e.msg);
    return sp;
}

Test(limits, estimates)
{
    bz_spec *sp = spec_of("0.001", 2000, 200);
    int64_t n = quota_weights(sp);
    cr_assert_eq(n, 632);
    cr_assert_eq(quota_samples_bytes(sp, n), 11 * (4 * 632 + 16));
    cr_assert_eq(quota_ckpt_bytes(sp, n), 3 * 41 * 632, "keep 3 of the 5 written");
    cr_assert_eq(quota_disk_bytes(sp, n), 11 * (4 * 632 + 16) + 3 * 41 * 632);
    sp->checkpoint_keep = 100;
    cr_assert_eq(quota_ckpt_bytes(sp, n), 5 * 41 * 632, "never more than are written");
    sp->samples_every = 0;
    cr_assert_eq(quota_samples_bytes(sp, n), 0);
    free(sp);
    sp = spec_of("[1e-4, 1e-3, 1e-2]", 2000, 200);
    cr_assert_eq(quota_disk_bytes(sp, n), 3 * (11 * (4 * 632 + 16) + 3 * 41 * 632), "every chain of a sweep");
    sp->sampler.steps = BZ_LIMIT_STEPS;
    sp->samples_every = 1;
    cr_assert_gt(quota_disk_bytes(sp, 500000000), 0, "saturates, no overflow");
    free(sp);
}

Test(limits, npy_weights_from_the_header)
{
    char dir[256], path[512];
    cr_assert_not_null(tu_mkdtemp(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/x_train.npy", dir);
    float x[10 * 7] = {0};
    int64_t shape[2] = {10, 7};
    bz_err e = {0};
    cr_assert_eq(npy_write(path, NPY_F32, 2, shape, x, &e), 0, "%s", e.msg);
    char text[1024];
    snprintf(text, sizeof text,
             "{\"dataset\": {\"kind\": \"npy\", \"dir\": \"%s\"}, \"model\": {\"hidden\": [5], \"bias\": true},"
             " \"sampler\": {\"T\": 0.001, \"steps\": 10}}",
             dir);
    bz_spec *sp = malloc(sizeof *sp);
    cr_assert_eq(spec_parse(text, sp, &e), 0, "%s", e.msg);
    cr_assert_eq(quota_weights(sp), 7 * 5 + 5 + 5 * 2 + 2, "n_in from the file, at least 2 classes");
    free(sp);
}

Test(limits, messages_name_the_key_the_numbers_and_the_field)
{
    bz_config c;
    memset(&c, 0, sizeof c);
    bz_err e = {0};
    bz_spec *sp = spec_of("0.001", 2000, 200);
    cr_assert_eq(quota_check_spec(&c, sp, &e), 0, "0 = unlimited");
    c.max_steps = 1000;
    cr_assert_eq(quota_check_spec(&c, sp, &e), BZ_ELIMIT);
    cr_assert_str_eq(e.field, "sampler.steps");
    cr_assert(strstr(e.msg, "max_steps = 1000") && strstr(e.msg, "2000"), "%s", e.msg);
    c.max_steps = 2000;
    c.max_weights = 600;
    cr_assert_eq(quota_check_spec(&c, sp, &e), BZ_ELIMIT);
    cr_assert_str_eq(e.field, "model.hidden");
    cr_assert(strstr(e.msg, "max_weights = 600") && strstr(e.msg, "632"), "%s", e.msg);
    c.max_weights = 632;
    cr_assert_eq(quota_check_spec(&c, sp, &e), 0);
    c.max_job_disk_mb = 1;
    c.max_steps = 0;
    sp->sampler.steps = 200000; /* 1001 samples of 2544 bytes: 2.5 MB */
    cr_assert_eq(quota_check_spec(&c, sp, &e), BZ_ELIMIT);
    cr_assert_str_eq(e.field, "samples.every");
    cr_assert(strstr(e.msg, "max_job_disk_mb = 1") && strstr(e.msg, "2.6 MB"), "%s", e.msg);
    sp->samples_every = 0;
    cr_assert_eq(quota_check_spec(&c, sp, &e), 0);
    free(sp);

    cr_assert_eq(quota_check_count(&c, "alice", 5, 1, &e), 0, "0 = unlimited");
    c.max_jobs_per_user = 2;
    cr_assert_eq(quota_check_count(&c, "alice", 1, 1, &e), 0);
    cr_assert_eq(quota_check_count(&c, "alice", 2, 1, &e), BZ_ELIMIT);
    cr_assert(strstr(e.msg, "max_jobs_per_user = 2") && strstr(e.msg, "alice already has 2"), "%s", e.msg);
    cr_assert_eq(quota_check_count(&c, "alice", 0, 3, &e), BZ_ELIMIT, "a sweep counts its chains");
}

Test(limits, active_jobs_per_owner)
{
    store *s = open_store();
    bz_err e = {0};
    job_row j;
    int64_t ids[3];
    for (int i = 0; i < 3; i++) {
        memset(&j, 0, sizeof j);
        snprintf(j.owner, sizeof j.owner, "%s", i < 2 ? "alice" : "bob");
        j.spec_json = (char *)"{}";
        j.steps = 10;
        cr_assert_eq(store_job_insert(s, &j, &e), 0, "%s", e.msg);
        ids[i] = j.id;
    }
    int64_t n = -1;
    cr_assert_eq(store_jobs_active(s, "alice", &n, &e), 0);
    cr_assert_eq(n, 2);
    job_row claimed;
    cr_assert_eq(store_job_claim(s, "w1", &claimed, &e), 0);
    job_row_free(&claimed);
    cr_assert_eq(store_jobs_active(s, "alice", &n, &e), 0);
    cr_assert_eq(n, 2, "running counts too");
    cr_assert_eq(store_job_set_status(s, ids[0], JOB_SUCCEEDED, NULL, &e), 0);
    cr_assert_eq(store_jobs_active(s, "alice", &n, &e), 0);
    cr_assert_eq(n, 1, "finished jobs do not");
    cr_assert_eq(store_jobs_active(s, "carol", &n, &e), 0);
    cr_assert_eq(n, 0);
    store_close(s);
}
