/* peertree-server — services and topics: service-provide, service-withdraw,
 * service-call, topic-create, topic-destroy, topic-publish, topic-subscribe,
 * topic-unsubscribe; the server-side API (pt_server_provide_service() ...)
 * and the built-in service "peertree".
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A call to a client's service waits for its reply as an ack (pt-messaging.c).
 */
#include "pt-server-private.h"

#include <string.h>

typedef struct _PtService PtService;

typedef struct {
  PtService *service;
  char *name;
  GHashTable *subscribers; /* PtConn* set */
} PtTopic;

struct _PtService {
  char *name;
  PtConn *provider;        /* NULL: provided by the server */
  GHashTable *methods;     /* method name set; NULL = any */
  PtServiceFunc func;
  gpointer user_data;
  GDestroyNotify destroy;
  GHashTable *topics;      /* name -> PtTopic* (owning) */
};

static void
topic_notify_destroyed (PtTopic *t)
{
  g_autoptr (JsonObject) ev = pt_event_new (PT_EV_TOPIC_DESTROYED, NULL);
  json_object_set_string_member (ev, PT_F_SERVICE, t->service->name);
  json_object_set_string_member (ev, PT_F_TOPIC, t->name);
  GHashTableIter it;
  gpointer key;
  g_auto (PtOutgoing) m = PT_OUTGOING_INIT (ev);
  g_hash_table_iter_init (&it, t->subscribers);
  while (g_hash_table_iter_next (&it, &key, NULL)) {
    PtConn *sub = key;
    g_hash_table_remove (sub->subscriptions, t);
    pt_conn_deliver (sub, &m, FALSE);
  }
  g_hash_table_remove_all (t->subscribers);
}

static void
topic_free (PtTopic *t)
{
  topic_notify_destroyed (t);
  g_hash_table_unref (t->subscribers);
  g_free (t->name);
  g_free (t);
}

static void
service_free (PtService *s)
{
  g_hash_table_unref (s->topics); /* tells subscribers */
  g_clear_pointer (&s->methods, g_hash_table_unref);
  if (s->destroy)
    s->destroy (s->user_data);
  g_free (s->name);
  g_free (s);
}

static PtService *
service_add (PtServer *self, const char *name, PtConn *provider)
{
  PtService *s = g_new0 (PtService, 1);
  s->name = g_strdup (name);
  s->provider = provider;
  s->topics = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify) topic_free);
  g_hash_table_insert (self->services, s->name, s);
  pt_cluster_claim (self, "pt:svc:", s->name);
  if (provider)
    g_hash_table_add (pt_lazy_set (&provider->services), s);
  return s;
}

static void
service_remove (PtServer *self, PtService *s)
{
  if (s->provider && s->provider->services)
    g_hash_table_remove (s->provider->services, s);
  g_hash_table_remove (self->services, s->name);
}

static PtService *
lookup_service (PtServer *self, JsonObject *msg, PtFault *f)
{
  const char *name;
  if (!pt_get_name (msg, PT_F_SERVICE, TRUE, &name, f))
    return NULL;
  PtService *s = g_hash_table_lookup (self->services, name);
  if (!s)
    pt_fault_set (f, PT_ERR_SERVICE_NOT_FOUND, "no service \"%s\"", name);
  return s;
}

static PtService *
own_service (PtConn *c, JsonObject *msg, PtFault *f)
{
  PtService *s = lookup_service (c->server, msg, f);
  if (s && s->provider != c) {
    pt_fault_set (f, PT_ERR_NOT_PROVIDER, "you do not provide service \"%s\"", s->name);
    return NULL;
  }
  return s;
}

static PtTopic *
lookup_topic (PtService *s, JsonObject *msg, PtFault *f)
{
  const char *name;
  if (!pt_get_name (msg, PT_F_TOPIC, TRUE, &name, f))
    return NULL;
  PtTopic *t = g_hash_table_lookup (s->topics, name);
  if (!t)
    pt_fault_set (f, PT_ERR_TOPIC_NOT_FOUND, "service \"%s\" has no topic \"%s\"", s->name, name);
  return t;
}

/* service-provide {service, methods?} */
static gboolean
handle_service_provide (PtRequest *req, PtConn *c, JsonObject *msg, JsonObject **result, PtFault *f)
{
  PtServer *self = c->server;
  const char *name;
  if (!pt_get_name (msg, PT_F_SERVICE, TRUE, &name, f))
    return FALSE;
  JsonArray *list;
  if (!pt_get_array (msg, PT_F_METHODS, FALSE, &list, f))
    return FALSE;
  for (guint i = 0; list && i < json_array_get_length (list); i++) {
    JsonNode *m = json_array_get_element (list, i);
    if (!JSON_NODE_HOLDS_VALUE (m) || json_node_get_value_type (m) != G_TYPE_STRING ||
        !pt_valid_name (json_node_get_string (m)))
      return pt_fault_set (f, PT_ERR_BAD_REQUEST, "\"methods\" must hold valid method names");
  }
  if (list && json_array_get_length (list) > PT_MAX_METHODS)
    return pt_fault_set (f, PT_ERR_LIMIT, "a service may declare at most %d methods",
        PT_MAX_METHODS);
  if (g_hash_table_contains (self->services, name))
    return pt_fault_set (f, PT_ERR_SERVICE_EXISTS, "service \"%s\" is already provided", name);
  if (pt_set_size (c->services) >= PT_MAX_SERVICES)
    return pt_fault_set (f, PT_ERR_LIMIT, "a client may provide at most %d services", PT_MAX_SERVICES);
  PtService *s = service_add (self, name, c);
  if (list) {
    s->methods = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
    for (guint i = 0; i < json_array_get_length (list); i++)
      g_hash_table_add (s->methods, g_strdup (json_array_get_string_element (list, i)));
  }
  return TRUE;
}

static gboolean
handle_service_withdraw (PtRequest *req, PtConn *c, JsonObject *msg, JsonObject **result, PtFault *f)
{
  PtService *s = own_service (c, msg, f);
  if (!s)
    return FALSE;
  service_remove (c->server, s);
  return TRUE;
}

/* service-call {service, method, args?, timeout?} */
static gboolean
handle_service_call (PtRequest *req, PtConn *c, JsonObject *msg, JsonObject **result, PtFault *f)
{
  PtServer *self = c->server;
  const char *method;
  gint64 deadline;
  g_autoptr (JsonNode) args = NULL;
  PtService *s = lookup_service (self, msg, f);
  if (!s || !pt_get_name (msg, PT_F_METHOD, TRUE, &method, f) || !pt_get_args (msg, &args, f) ||
      !pt_get_timeout (msg, &deadline, f))
    return FALSE;
  if (s->methods && !g_hash_table_contains (s->methods, method))
    return pt_fault_set (f, PT_ERR_METHOD_NOT_FOUND, "service \"%s\" has no method \"%s\"", s->name,
        method);

  if (!s->provider) {
    g_autoptr (GError) error = NULL;
    JsonNode *value = s->func (self, c->client_id, method, json_node_get_array (args),
        s->user_data, &error);
    if (error) {
      if (value)
        json_node_unref (value);
      return pt_fault_set (f, PT_ERR_SERVICE_ERROR, "%s", error->message);
    }
    *result = json_object_new ();
    json_object_set_member (*result, PT_F_VALUE, value ? value : json_node_init_null (json_node_alloc ()));
    return TRUE;
  }
  if (s->provider == c)
    return pt_fault_set (f, PT_ERR_BAD_REQUEST, "a provider cannot call its own service");
  if (!pt_check_pending (c, f))
    return FALSE;
  g_autoptr (JsonObject) ev = pt_event_new (PT_EV_SERVICE_CALL, NULL);
  json_object_set_string_member (ev, PT_F_FROM, c->client_id);
  json_object_set_string_member (ev, PT_F_SERVICE, s->name);
  json_object_set_string_member (ev, PT_F_METHOD, method);
  json_object_set_member (ev, PT_F_ARGS, json_node_ref (args));
  json_object_set_int_member (ev, PT_F_ACK_ID, pt_ack_new (req, s->provider, PT_ACK_SERVICE, deadline));
  pt_conn_relay (s->provider, ev);
  return TRUE;
}

static gboolean
topic_create (PtService *s, const char *name, PtFault *f)
{
  if (!pt_valid_name (name))
    return pt_fault_set (f, PT_ERR_BAD_REQUEST,
        "topic names are 1 to %d bytes of UTF-8 without control characters", PT_NAME_MAX_LEN);
  if (g_hash_table_contains (s->topics, name))
    return pt_fault_set (f, PT_ERR_TOPIC_EXISTS, "service \"%s\" has a topic \"%s\" already", s->name, name);
  if (g_hash_table_size (s->topics) >= PT_MAX_TOPICS)
    return pt_fault_set (f, PT_ERR_LIMIT, "a service may have at most %d topics", PT_MAX_TOPICS);
  PtTopic *t = g_new0 (PtTopic, 1);
  t->service = s;
  t->name = g_strdup (name);
  t->subscribers = g_hash_table_new (NULL, NULL);
  g_hash_table_insert (s->topics, t->name, t);
  return TRUE;
}

static guint
topic_publish (PtTopic *t, JsonNode *args)
{
  g_autoptr (JsonObject) ev = pt_event_new (PT_EV_TOPIC, NULL);
  json_object_set_string_member (ev, PT_F_SERVICE, t->service->name);
  json_object_set_string_member (ev, PT_F_TOPIC, t->name);
  json_object_set_member (ev, PT_F_ARGS, json_node_ref (args));
  GHashTableIter it;
  gpointer key;
  g_auto (PtOutgoing) m = PT_OUTGOING_INIT (ev);
  g_hash_table_iter_init (&it, t->subscribers);
  while (g_hash_table_iter_next (&it, &key, NULL))
    pt_conn_deliver (key, &m, TRUE);
  return g_hash_table_size (t->subscribers);
}

static gboolean
handle_topic_create (PtRequest *req, PtConn *c, JsonObject *msg, JsonObject **result, PtFault *f)
{
  const char *name;
  PtService *s = own_service (c, msg, f);
  return s && pt_get_string (msg, PT_F_TOPIC, TRUE, &name, f) && topic_create (s, name, f);
}

static gboolean
handle_topic_destroy (PtRequest *req, PtConn *c, JsonObject *msg, JsonObject **result, PtFault *f)
{
  PtService *s = own_service (c, msg, f);
  PtTopic *t = s ? lookup_topic (s, msg, f) : NULL;
  if (!t)
    return FALSE;
  g_hash_table_remove (s->topics, t->name);
  return TRUE;
}

static gboolean
handle_topic_publish (PtRequest *req, PtConn *c, JsonObject *msg, JsonObject **result, PtFault *f)
{
  g_autoptr (JsonNode) args = NULL;
  PtService *s = own_service (c, msg, f);
  PtTopic *t = s ? lookup_topic (s, msg, f) : NULL;
  if (!t || !pt_get_args (msg, &args, f))
    return FALSE;
  *result = json_object_new ();
  json_object_set_int_member (*result, PT_F_DELIVERED, topic_publish (t, args));
  return TRUE;
}

static gboolean
handle_topic_subscribe (PtRequest *req, PtConn *c, JsonObject *msg, JsonObject **result, PtFault *f)
{
  PtService *s = lookup_service (c->server, msg, f);
  PtTopic *t = s ? lookup_topic (s, msg, f) : NULL;
  if (!t)
    return FALSE;
  if (c->subscriptions && g_hash_table_contains (c->subscriptions, t))
    return TRUE;
  if (pt_set_size (c->subscriptions) >= PT_MAX_SUBSCRIPTIONS)
    return pt_fault_set (f, PT_ERR_LIMIT, "a client may hold at most %d subscriptions",
        PT_MAX_SUBSCRIPTIONS);
  g_hash_table_add (pt_lazy_set (&c->subscriptions), t);
  g_hash_table_add (t->subscribers, c);
  return TRUE;
}

static gboolean
handle_topic_unsubscribe (PtRequest *req, PtConn *c, JsonObject *msg, JsonObject **result, PtFault *f)
{
  PtService *s = lookup_service (c->server, msg, f);
  PtTopic *t = s ? lookup_topic (s, msg, f) : NULL;
  if (!t)
    return FALSE;
  if (!c->subscriptions || !g_hash_table_remove (c->subscriptions, t))
    return pt_fault_set (f, PT_ERR_NOT_MEMBER, "you are not subscribed to %s/%s", s->name, t->name);
  g_hash_table_remove (t->subscribers, c);
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* Server-side API                                                          */

gboolean
pt_server_provide_service (PtServer *self, const char *name, const char *const *methods,
    PtServiceFunc func, gpointer user_data, GDestroyNotify destroy, GError **error)
{
  g_return_val_if_fail (PT_IS_SERVER (self), FALSE);
  g_return_val_if_fail (name != NULL && func != NULL, FALSE);
  if (!pt_valid_name (name) || g_hash_table_contains (self->services, name)) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS, "service \"%s\" is taken or invalid", name);
    return FALSE;
  }
  PtService *s = service_add (self, name, NULL);
  s->func = func;
  s->user_data = user_data;
  s->destroy = destroy;
  if (methods) {
    s->methods = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
    for (guint i = 0; methods[i]; i++)
      g_hash_table_add (s->methods, g_strdup (methods[i]));
  }
  return TRUE;
}

gboolean
pt_server_withdraw_service (PtServer *self, const char *name)
{
  PtService *s = g_hash_table_lookup (self->services, name);
  if (!s)
    return FALSE;
  service_remove (self, s);
  return TRUE;
}

gboolean
pt_server_create_topic (PtServer *self, const char *service, const char *topic, GError **error)
{
  PtService *s = g_hash_table_lookup (self->services, service);
  PtFault f = { 0 };
  if (!s || s->provider) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "the server provides no service \"%s\"",
        service);
    return FALSE;
  }
  if (!topic_create (s, topic, &f)) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s", f.message);
    pt_fault_clear (&f);
    return FALSE;
  }
  return TRUE;
}

gboolean
pt_server_destroy_topic (PtServer *self, const char *service, const char *topic)
{
  PtService *s = g_hash_table_lookup (self->services, service);
  return s && !s->provider && g_hash_table_remove (s->topics, topic);
}

guint
pt_server_publish (PtServer *self, const char *service, const char *topic, JsonArray *args)
{
  PtService *s = g_hash_table_lookup (self->services, service);
  PtTopic *t = s && !s->provider ? g_hash_table_lookup (s->topics, topic) : NULL;
  if (!t)
    return 0;
  g_autoptr (JsonNode) node = json_node_init_array (json_node_alloc (),
      args ? args : json_array_new ());
  if (!args)
    json_array_unref (json_node_get_array (node)); /* init_array took its own ref */
  return topic_publish (t, node);
}

/* The built-in service "peertree": the server's trees, to any client. */
static JsonNode *
builtin_service (PtServer *server, const char *caller, const char *method, JsonArray *args,
    gpointer user_data, GError **error)
{
  g_autoptr (JsonNode) status = pt_server_build_status (server);
  JsonArray *trees = json_object_get_array_member (json_node_get_object (status), PT_F_TREES);
  if (strcmp (method, PT_METHOD_LIST_TREES) == 0) {
    JsonArray *out = json_array_new ();
    for (guint i = 0; i < json_array_get_length (trees); i++) {
      JsonObject *t = json_array_get_object_element (trees, i);
      JsonObject *o = json_object_new ();
      json_object_set_string_member (o, PT_F_ID, json_object_get_string_member (t, PT_F_ID));
      json_object_set_string_member (o, PT_F_ROOT, json_object_get_string_member (t, PT_F_ROOT));
      json_object_set_int_member (o, PT_F_SIZE, json_object_get_int_member (t, PT_F_SIZE));
      json_array_add_object_element (out, o);
    }
    JsonNode *node = json_node_new (JSON_NODE_ARRAY);
    json_node_take_array (node, out); /* init_array would keep a second reference */
    return node;
  }
  /* "tree" [id] */
  const char *id = args && json_array_get_length (args) == 1 &&
      JSON_NODE_HOLDS_VALUE (json_array_get_element (args, 0)) &&
      json_node_get_value_type (json_array_get_element (args, 0)) == G_TYPE_STRING ?
      json_array_get_string_element (args, 0) : NULL;
  if (!id) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "tree takes one argument: a tree id");
    return NULL;
  }
  for (guint i = 0; i < json_array_get_length (trees); i++)
    if (g_strcmp0 (json_object_get_string_member (json_array_get_object_element (trees, i), PT_F_ID),
            id) == 0)
      return json_node_copy (json_array_get_element (trees, i));
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "tree \"%s\" does not exist", id);
  return NULL;
}

static void
add_builtin (PtServer *self)
{
  static const char *const methods[] = { PT_METHOD_LIST_TREES, PT_METHOD_TREE, NULL };
  pt_server_provide_service (self, PT_SERVICE_PEERTREE, methods, builtin_service, NULL, NULL, NULL);
}

/* ------------------------------------------------------------------------ */
/* Life cycle                                                               */

/* @c's subscriptions end; the services it provides are removed (their
 * subscribers told). */
static void
services_conn_gone (PtConn *c)
{
  PtServer *self = c->server;
  GHashTableIter it;
  gpointer key;
  if (c->subscriptions) {
    g_hash_table_iter_init (&it, c->subscriptions);
    while (g_hash_table_iter_next (&it, &key, NULL))
      g_hash_table_remove (((PtTopic *) key)->subscribers, c);
    g_hash_table_remove_all (c->subscriptions);
  }
  if (c->services) {
    g_autoptr (GList) services = g_hash_table_get_keys (c->services);
    for (GList *l = services; l; l = l->next)
      service_remove (self, l->data);
  }
}

/* Client-provided services only; the server's own stay. Topic subscribers
 * are connections being closed: forget them without telling. */
static void
services_reset (PtServer *self)
{
  GHashTableIter it;
  gpointer value;
  g_hash_table_iter_init (&it, self->services);
  while (g_hash_table_iter_next (&it, NULL, &value)) {
    PtService *s = value;
    GHashTableIter ti;
    gpointer topic;
    g_hash_table_iter_init (&ti, s->topics);
    while (g_hash_table_iter_next (&ti, NULL, &topic))
      g_hash_table_remove_all (((PtTopic *) topic)->subscribers);
    if (s->provider)
      g_hash_table_iter_remove (&it);
  }
}

static void
services_finalize (PtServer *self)
{
  services_reset (self);
  g_hash_table_unref (self->services);
}

void
pt_services_init (PtServer *self)
{
  static const PtHooks hooks = {
    .conn_gone = services_conn_gone,
    .reset = services_reset,
    .finalize = services_finalize,
  };
  self->services = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
      (GDestroyNotify) service_free);
  pt_server_add_handler (self, PT_REQ_SERVICE_PROVIDE, handle_service_provide, PT_HANDLER_DEFAULT);
  pt_server_add_handler (self, PT_REQ_SERVICE_WITHDRAW, handle_service_withdraw, PT_HANDLER_DEFAULT);
  pt_server_add_handler (self, PT_REQ_SERVICE_CALL, handle_service_call, PT_HANDLER_DEFAULT);
  pt_server_add_handler (self, PT_REQ_TOPIC_CREATE, handle_topic_create, PT_HANDLER_DEFAULT);
  pt_server_add_handler (self, PT_REQ_TOPIC_DESTROY, handle_topic_destroy, PT_HANDLER_DEFAULT);
  pt_server_add_handler (self, PT_REQ_TOPIC_PUBLISH, handle_topic_publish, PT_HANDLER_DEFAULT);
  pt_server_add_handler (self, PT_REQ_TOPIC_SUBSCRIBE, handle_topic_subscribe, PT_HANDLER_DEFAULT);
  pt_server_add_handler (self, PT_REQ_TOPIC_UNSUBSCRIBE, handle_topic_unsubscribe, PT_HANDLER_DEFAULT);
  pt_server_add_hooks (self, &hooks);
  add_builtin (self);
}
