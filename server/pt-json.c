/* peertree-server — reading request fields: typed getters, faults, and the
 * rules for ids and names.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Two rules (docs/protocol.md, "Names and limits"):
 * - ids (clientId, tree id) are 1 to 64 of A-Z a-z 0-9 - _ . : @ — they end
 *   up in logs, URIs and element properties; a bad one is `invalid-id`;
 * - names (service, method, topic, room, event, channel) are 1 to 128 bytes
 *   of UTF-8 without control characters; a bad one is `bad-request`.
 */
#include "pt-server-private.h"

#include <string.h>

#define ID_MAX_LEN 64
#define NAME_MAX_LEN 128

void
pt_fault_clear (Fault *f)
{
  g_clear_pointer (&f->message, g_free);
  f->code = NULL;
}

gboolean
pt_fault_set (Fault *f, const char *code, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_free (f->message);
  f->code = code;
  f->message = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  return FALSE;
}

gboolean
pt_valid_id (const char *s)
{
  gsize n = strlen (s);
  if (n == 0 || n > ID_MAX_LEN)
    return FALSE;
  for (gsize i = 0; i < n; i++) {
    char c = s[i];
    if (!(g_ascii_isalnum (c) || c == '-' || c == '_' || c == '.' || c == ':' || c == '@'))
      return FALSE;
  }
  return TRUE;
}

gboolean
pt_valid_name (const char *s)
{
  gsize n = strlen (s);
  if (n == 0 || n > NAME_MAX_LEN || !g_utf8_validate (s, n, NULL))
    return FALSE;
  for (const char *p = s; *p; p = g_utf8_next_char (p))
    if (g_unichar_iscntrl (g_utf8_get_char (p)))
      return FALSE;
  return TRUE;
}

/* Reads a string member (optional unless @required); FALSE (with @f set) if
 * present but not a string. */
gboolean
pt_get_string (JsonObject *obj, const char *name, gboolean required, const char **out, Fault *f)
{
  JsonNode *node = json_object_get_member (obj, name);
  *out = NULL;
  if (!node || JSON_NODE_HOLDS_NULL (node)) {
    if (required)
      return pt_fault_set (f, "bad-request", "missing field \"%s\"", name);
    return TRUE;
  }
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    return pt_fault_set (f, "bad-request", "field \"%s\" must be a string", name);
  *out = json_node_get_string (node);
  return TRUE;
}

gboolean
pt_get_id (JsonObject *obj, const char *name, gboolean required, const char **out, Fault *f)
{
  if (!pt_get_string (obj, name, required, out, f))
    return FALSE;
  if (*out && !pt_valid_id (*out))
    return pt_fault_set (f, "invalid-id",
        "field \"%s\" must be 1 to %d characters of A-Z a-z 0-9 - _ . : @", name, ID_MAX_LEN);
  return TRUE;
}

gboolean
pt_get_uint (JsonObject *obj, const char *name, gboolean required, gint64 max, gint64 *out, Fault *f)
{
  JsonNode *node = json_object_get_member (obj, name);
  *out = 0;
  if (!node || JSON_NODE_HOLDS_NULL (node)) {
    if (required)
      return pt_fault_set (f, "bad-request", "missing field \"%s\"", name);
    return TRUE;
  }
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64)
    return pt_fault_set (f, "bad-request", "field \"%s\" must be an integer", name);
  gint64 v = json_node_get_int (node);
  if (v < 0 || v > max)
    return pt_fault_set (f, "bad-request", "field \"%s\" must be between 0 and %" G_GINT64_FORMAT,
        name, max);
  *out = v;
  return TRUE;
}

char *
pt_random_id (const char *prefix)
{
  return g_strdup_printf ("%s%08x%08x", prefix, g_random_int (), g_random_int ());
}

gboolean
pt_get_bool (JsonObject *obj, const char *name, gboolean *out, Fault *f)
{
  JsonNode *node = json_object_get_member (obj, name);
  *out = FALSE;
  if (!node || JSON_NODE_HOLDS_NULL (node))
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_BOOLEAN)
    return pt_fault_set (f, "bad-request", "field \"%s\" must be true or false", name);
  *out = json_node_get_boolean (node);
  return TRUE;
}

/* Optional "args" array, returned as a new node (an empty array if absent). */
gboolean
pt_get_args (JsonObject *obj, JsonNode **out, Fault *f)
{
  JsonNode *node = json_object_get_member (obj, "args");
  if (!node || JSON_NODE_HOLDS_NULL (node)) {
    *out = json_node_init_array (json_node_alloc (), json_array_new ());
    return TRUE;
  }
  if (!JSON_NODE_HOLDS_ARRAY (node))
    return pt_fault_set (f, "bad-request", "field \"args\" must be an array");
  *out = json_node_ref (node);
  return TRUE;
}

gboolean
pt_get_name (JsonObject *obj, const char *name, const char **out, Fault *f)
{
  if (!pt_get_string (obj, name, TRUE, out, f))
    return FALSE;
  if (!pt_valid_name (*out))
    return pt_fault_set (f, "bad-request", "field \"%s\" must be 1 to %d bytes of UTF-8 without "
        "control characters", name, NAME_MAX_LEN);
  return TRUE;
}

gboolean
pt_get_timeout (JsonObject *obj, gint64 *deadline, Fault *f)
{
  gint64 ms;
  if (!pt_get_uint (obj, "timeout", FALSE, PT_MAX_TIMEOUT_MS, &ms, f))
    return FALSE;
  *deadline = g_get_monotonic_time () + (ms ? ms : PT_DEFAULT_TIMEOUT_MS) * 1000;
  return TRUE;
}
