/* peertree GStreamer elements — the peertree:// URI handler of both elements
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 *   peertree://HOST[:PORT]/TREE-ID[?PROPERTY=VALUE&…]
 *
 * sets `server` to ws://HOST:PORT, `tree-id` to TREE-ID and each query
 * PROPERTY (any writable property of the element's own, e.g. client-id,
 * local-addresses, latency, k) with gst_util_set_object_arg(). peertreesrc
 * needs a TREE-ID; for peertreesink it may be empty (the server chooses).
 * The URI an element gives back names its server, its tree and the query
 * properties of its PtUriSpec that are not at their default.
 *
 * Works through the element's properties only, so the elements keep their
 * settings as they are (pt-settings.h).
 */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

typedef struct {
  /* GST_URI_SRC or GST_URI_SINK */
  GstURIType type;
  /* the properties get_uri writes into the query, in this order, when they
   * are set and not at their default (NULL-terminated) */
  const gchar *const *query_properties;
} PtUriSpec;

/* A GInterfaceInitFunc's body: fills @iface (a GstURIHandlerInterface) for
 * the element type implementing it. @spec must be static. */
void pt_uri_handler_init (gpointer iface, const PtUriSpec *spec);

G_END_DECLS
