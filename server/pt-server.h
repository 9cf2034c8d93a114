/* peertree-server — the signalling server as a GObject, embeddable in tests
 * and applications.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib-object.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define PT_TYPE_SERVER (pt_server_get_type ())
G_DECLARE_FINAL_TYPE (PtServer, pt_server, PT, SERVER, GObject)

/* Creates a server; configure it through its properties ("host", "port",
 * "k", "k1", "max-message-size", "keepalive-interval", "dead-timeout",
 * "rate", "burst", "max-clients", "max-trees-per-client", "allow-takeover")
 * before pt_server_listen(). */
PtServer *pt_server_new (void);

/* Loads the [server] group of a GKeyFile; keys are the property names. */
gboolean pt_server_load_config (PtServer *self, const char *path, GError **error);

/* Starts listening on the thread-default main context. */
gboolean pt_server_listen (PtServer *self, GError **error);
/* The bound port (useful with port 0), 0 before listening. */
guint pt_server_get_port (PtServer *self);
/* ws://HOST:PORT, newly allocated. */
char *pt_server_get_url (PtServer *self);
/* Closes every connection and stops listening. */
void pt_server_stop (PtServer *self);

guint pt_server_get_n_clients (PtServer *self);
/* The document served at GET /status. */
JsonNode *pt_server_build_status (PtServer *self);

G_END_DECLS
