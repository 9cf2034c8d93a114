/* peertree-server — the request readers that are the server's own (args,
 * timeout) and random ids; the typed getters, faults and the rules for ids
 * and names are the protocol module's (common/pt-protocol.c).
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









char *
pt_random_id (const char *prefix)
{
  return g_strdup_printf ("%s%08x%08x", prefix, g_random_int (), g_random_int ());
}


/* Optional "args" array, returned as a new node (an empty array if absent). */
gboolean
pt_get_args (JsonObject *obj, JsonNode **out, PtFault *f)
{
  JsonArray *args;
  if (!pt_get_array (obj, PT_F_ARGS, FALSE, &args, f))
    return FALSE;
  if (args) {
    *out = json_node_ref (json_object_get_member (obj, PT_F_ARGS));
  } else {
    /* take: json_node_init_array would add a reference nobody drops */
    *out = json_node_new (JSON_NODE_ARRAY);
    json_node_take_array (*out, json_array_new ());
  }
  return TRUE;
}


gboolean
pt_get_timeout (JsonObject *obj, gint64 *deadline, PtFault *f)
{
  gint64 ms;
  if (!pt_get_uint (obj, PT_F_TIMEOUT, FALSE, PT_MAX_TIMEOUT_MS, &ms, f))
    return FALSE;
  *deadline = pt_now () + (ms ? ms : PT_DEFAULT_TIMEOUT_MS) * 1000;
  return TRUE;
}
