/* peertree-server — tokens: compact JWS (HS256) signing and verification.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "pt-auth.h"

#include "common/pt-protocol.h"

#include <string.h>

G_DEFINE_QUARK (pt-auth-error-quark, pt_auth_error)

#define HS256_LEN 32

void
pt_grants_free (PtGrants *g)
{
  if (!g)
    return;
  g_free (g->sub);
  g_strfreev (g->publish);
  g_strfreev (g->view);
  g_strfreev (g->relay);
  g_strfreev (g->rooms);
  g_strfreev (g->clients);
  g_strfreev (g->provide);
  g_strfreev (g->call);
  g_strfreev (g->subscribe);
  g_free (g);
}

gboolean
pt_grants_match (GStrv patterns, const char *name)
{
  if (!patterns || !name)
    return FALSE;
  for (guint i = 0; patterns[i]; i++)
    if (g_pattern_match_simple (patterns[i], name))
      return TRUE;
  return FALSE;
}

/* ------------------------------------------------------------------------ */
/* base64url (RFC 4648 §5) without padding                                  */

static char *
b64url_encode (const guint8 *data, gsize len)
{
  char *s = g_base64_encode (data, len);
  char *w = s;
  for (char *r = s; *r; r++) {
    if (*r == '=')
      break;
    *w++ = *r == '+' ? '-' : *r == '/' ? '_' : *r;
  }
  *w = '\0';
  return s;
}

/* Strict: only the URL-safe alphabet, no padding, no impossible length. */
static guint8 *
b64url_decode (const char *s, gsize len, gsize *out_len)
{
  if (len % 4 == 1)
    return NULL;
  g_autofree char *std = g_malloc (len + 3);
  for (gsize i = 0; i < len; i++) {
    char ch = s[i];
    if (g_ascii_isalnum (ch))
      std[i] = ch;
    else if (ch == '-')
      std[i] = '+';
    else if (ch == '_')
      std[i] = '/';
    else
      return NULL;
  }
  gsize n = len;
  while (n % 4)
    std[n++] = '=';
  std[n] = '\0';
  return g_base64_decode (std, out_len);
}

static JsonObject *
decode_json_part (const char *s, gsize len)
{
  gsize n;
  g_autofree guint8 *raw = b64url_decode (s, len, &n);
  if (!raw || n == 0 || !pt_json_depth_ok ((const char *) raw, n))
    return NULL;
  g_autoptr (JsonParser) parser = json_parser_new_immutable ();
  if (!json_parser_load_from_data (parser, (const char *) raw, n, NULL))
    return NULL;
  JsonNode *root = json_parser_get_root (parser);
  if (!root || !JSON_NODE_HOLDS_OBJECT (root))
    return NULL;
  return json_object_ref (json_node_get_object (root));
}

/* ------------------------------------------------------------------------ */
/* HMAC-SHA256                                                              */

static void
hs256 (GBytes *key, const char *data, gsize len, guint8 out[HS256_LEN])
{
  gsize key_len;
  const guint8 *k = g_bytes_get_data (key, &key_len);
  g_autoptr (GHmac) hmac = g_hmac_new (G_CHECKSUM_SHA256, k, key_len);
  gsize n = HS256_LEN;
  g_hmac_update (hmac, (const guchar *) data, len);
  g_hmac_get_digest (hmac, out, &n);
  g_assert (n == HS256_LEN);
}

static gboolean
equal_constant_time (const guint8 *a, const guint8 *b, gsize len)
{
  volatile guint8 diff = 0;
  for (gsize i = 0; i < len; i++)
    diff |= a[i] ^ b[i];
  return diff == 0;
}

/* ------------------------------------------------------------------------ */
/* Keys                                                                     */

GBytes *
pt_auth_load_key (const char *path, GError **error)
{
  g_autofree char *data = NULL;
  gsize len;
  if (!g_file_get_contents (path, &data, &len, error))
    return NULL;
  while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
    len--;
  if (len < PT_AUTH_MIN_KEY_LEN) {
    g_set_error (error, PT_AUTH_ERROR, PT_AUTH_ERROR_KEY, "%s: a key must have at least %d bytes "
        "(e.g. head -c 32 /dev/urandom | base64 > %s)", path, PT_AUTH_MIN_KEY_LEN, path);
    return NULL;
  }
  return g_bytes_new (data, len);
}

/* ------------------------------------------------------------------------ */
/* Claims                                                                   */

static gboolean
read_time (JsonObject *o, const char *name, gboolean required, gint64 *out)
{
  JsonNode *n = json_object_get_member (o, name);
  *out = 0;
  if (!n)
    return !required;
  if (!JSON_NODE_HOLDS_VALUE (n))
    return FALSE;
  GType t = json_node_get_value_type (n);
  if (t == G_TYPE_INT64)
    *out = json_node_get_int (n);
  else if (t == G_TYPE_DOUBLE)
    *out = (gint64) json_node_get_double (n); /* NumericDate may have decimals */
  else
    return FALSE;
  return TRUE;
}

/* A list of patterns: absent is empty; anything but an array of strings is
 * malformed. */
static gboolean
read_patterns (JsonObject *o, const char *name, GStrv *out)
{
  JsonNode *n = o ? json_object_get_member (o, name) : NULL;
  g_autoptr (GStrvBuilder) b = g_strv_builder_new ();
  if (n) {
    if (!JSON_NODE_HOLDS_ARRAY (n))
      return FALSE;
    JsonArray *a = json_node_get_array (n);
    for (guint i = 0; i < json_array_get_length (a); i++) {
      JsonNode *e = json_array_get_element (a, i);
      if (!JSON_NODE_HOLDS_VALUE (e) || json_node_get_value_type (e) != G_TYPE_STRING)
        return FALSE;
      g_strv_builder_add (b, json_node_get_string (e));
    }
  }
  *out = g_strv_builder_end (b);
  return TRUE;
}

static gboolean
read_group (JsonObject *claims, const char *name, JsonObject **out)
{
  JsonNode *n = json_object_get_member (claims, name);
  *out = NULL;
  if (!n)
    return TRUE;
  if (!JSON_NODE_HOLDS_OBJECT (n))
    return FALSE;
  *out = json_node_get_object (n);
  return TRUE;
}

static PtGrants *
read_claims (JsonObject *claims, GError **error)
{
  g_autoptr (PtGrants) g = g_new0 (PtGrants, 1);
  JsonObject *trees, *services;
  const char *sub = pt_str (claims, "sub");
  JsonNode *admin = json_object_get_member (claims, "admin");
  const char *bad = NULL;

  if (!sub || !pt_valid_id (sub))
    bad = "\"sub\" must be a clientId";
  else if (!json_object_has_member (claims, "exp"))
    bad = "\"exp\" is required";
  else if (!read_time (claims, "exp", TRUE, &g->exp) || !read_time (claims, "nbf", FALSE, &g->nbf))
    bad = "\"exp\" and \"nbf\" must be numbers (seconds since the epoch)";
  else if (admin && (!JSON_NODE_HOLDS_VALUE (admin) ||
      json_node_get_value_type (admin) != G_TYPE_BOOLEAN))
    bad = "\"admin\" must be a boolean";
  else if (!read_group (claims, "trees", &trees) || !read_group (claims, "services", &services))
    bad = "\"trees\" and \"services\" must be objects";
  else if (!read_patterns (trees, "publish", &g->publish) ||
      !read_patterns (trees, "view", &g->view) || !read_patterns (trees, "relay", &g->relay) ||
      !read_patterns (claims, "rooms", &g->rooms) ||
      !read_patterns (claims, "clients", &g->clients) ||
      !read_patterns (services, "provide", &g->provide) ||
      !read_patterns (services, "call", &g->call) ||
      !read_patterns (services, "subscribe", &g->subscribe))
    bad = "rights must be arrays of strings";
  if (bad) {
    g_set_error (error, PT_AUTH_ERROR, PT_AUTH_ERROR_MALFORMED, "token claims: %s", bad);
    return NULL;
  }
  g->sub = g_strdup (sub);
  g->admin = admin && json_node_get_boolean (admin);
  return g_steal_pointer (&g);
}

/* ------------------------------------------------------------------------ */
/* Verify, sign                                                             */

PtGrants *
pt_auth_verify (GBytes *key, const char *token, gint64 now, GError **error)
{
  gsize len = token ? strnlen (token, PT_AUTH_MAX_TOKEN_LEN + 1) : 0;
  const char *dot1 = token ? strchr (token, '.') : NULL;
  const char *dot2 = dot1 ? strchr (dot1 + 1, '.') : NULL;
  if (len == 0 || len > PT_AUTH_MAX_TOKEN_LEN || !dot2 || strchr (dot2 + 1, '.')) {
    g_set_error (error, PT_AUTH_ERROR, PT_AUTH_ERROR_MALFORMED,
        "token is not a compact JWS (three base64url parts, at most %d bytes)",
        PT_AUTH_MAX_TOKEN_LEN);
    return NULL;
  }
  g_autoptr (JsonObject) header = decode_json_part (token, dot1 - token);
  if (!header) {
    g_set_error (error, PT_AUTH_ERROR, PT_AUTH_ERROR_MALFORMED, "token header is not base64url "
        "JSON");
    return NULL;
  }
  /* Only HS256: never "none", never an algorithm the token chooses. */
  if (g_strcmp0 (pt_str (header, "alg"), "HS256") != 0 || json_object_has_member (header, "crit")) {
    g_set_error (error, PT_AUTH_ERROR, PT_AUTH_ERROR_ALGORITHM, "token must be signed with HS256");
    return NULL;
  }
  gsize sig_len;
  const char *sig_text = dot2 + 1;
  g_autofree guint8 *sig = b64url_decode (sig_text, len - (sig_text - token), &sig_len);
  guint8 expected[HS256_LEN];
  hs256 (key, token, dot2 - token, expected);
  if (!sig || sig_len != HS256_LEN || !equal_constant_time (sig, expected, HS256_LEN)) {
    g_set_error (error, PT_AUTH_ERROR, PT_AUTH_ERROR_SIGNATURE, "token signature is not valid");
    return NULL;
  }
  g_autoptr (JsonObject) claims = decode_json_part (dot1 + 1, dot2 - dot1 - 1);
  if (!claims) {
    g_set_error (error, PT_AUTH_ERROR, PT_AUTH_ERROR_MALFORMED, "token claims are not base64url "
        "JSON");
    return NULL;
  }
  g_autoptr (PtGrants) g = read_claims (claims, error);
  if (!g)
    return NULL;
  if (now >= g->exp) {
    g_set_error (error, PT_AUTH_ERROR, PT_AUTH_ERROR_EXPIRED, "token expired %" G_GINT64_FORMAT
        " s ago", now - g->exp);
    return NULL;
  }
  if (g->nbf && now < g->nbf) {
    g_set_error (error, PT_AUTH_ERROR, PT_AUTH_ERROR_NOT_YET, "token is not valid before %"
        G_GINT64_FORMAT " s from now", g->nbf - now);
    return NULL;
  }
  return g_steal_pointer (&g);
}

static char *
encode_json_part (JsonObject *o)
{
  g_autoptr (JsonNode) node = json_node_init_object (json_node_alloc (), o);
  g_autofree char *text = json_to_string (node, FALSE);
  return b64url_encode ((const guint8 *) text, strlen (text));
}

char *
pt_auth_sign (GBytes *key, JsonObject *claims)
{
  g_autoptr (JsonObject) header = json_object_new ();
  json_object_set_string_member (header, "alg", "HS256");
  json_object_set_string_member (header, "typ", "JWT");
  g_autofree char *h = encode_json_part (header);
  g_autofree char *p = encode_json_part (claims);
  g_autofree char *signing_input = g_strconcat (h, ".", p, NULL);
  guint8 sig[HS256_LEN];
  hs256 (key, signing_input, strlen (signing_input), sig);
  g_autofree char *s = b64url_encode (sig, HS256_LEN);
  return g_strconcat (signing_input, ".", s, NULL);
}
