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
 * "rate", "burst", "max-clients", "max-trees-per-client", "max-buffered",
 * "source-grace", "allow-takeover", "http-timeout", "auth-key",
 * "max-connections-per-ip", "connection-rate-per-ip", "connection-burst-per-ip",
 * "max-trees-per-ip", "max-trees") before pt_server_listen(). */
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
/* With the redis property: whether the server is connected to Redis (part of
 * the service); FALSE without it. */
gboolean pt_server_is_clustered (PtServer *self);
/* The document served at GET /status. */
JsonNode *pt_server_build_status (PtServer *self);

G_END_DECLS

G_BEGIN_DECLS

/**
 * PtServiceFunc:
 * @server: the server
 * @caller: clientId of the caller
 * @method: the method called (one of those provided)
 * @args: the call's arguments
 * @user_data: the data given to pt_server_provide_service()
 * @error: set it to refuse the call; the caller gets code `service-error`
 *   with its message
 *
 * Runs a call to a service that the server itself provides, on the server's
 * main context.
 *
 * Returns: (transfer full) (nullable): the reply value (%NULL means JSON null)
 */
typedef JsonNode *(*PtServiceFunc) (PtServer *server, const char *caller, const char *method,
    JsonArray *args, gpointer user_data, GError **error);

/* Provides service @name with @methods (NULL-terminated; NULL = any method)
 * from the server itself. Clients call it exactly as a client-provided
 * service. Fails if the name is taken. */
gboolean pt_server_provide_service (PtServer *self, const char *name, const char *const *methods,
    PtServiceFunc func, gpointer user_data, GDestroyNotify destroy, GError **error);
/* Removes a service (any provider); its topics' subscribers are told. */
gboolean pt_server_withdraw_service (PtServer *self, const char *name);
/* Topics of a service provided by the server. */
gboolean pt_server_create_topic (PtServer *self, const char *service, const char *topic,
    GError **error);
gboolean pt_server_destroy_topic (PtServer *self, const char *service, const char *topic);
/* Sends @args (may be NULL) to every subscriber; returns how many got it. */
guint pt_server_publish (PtServer *self, const char *service, const char *topic, JsonArray *args);

G_END_DECLS
