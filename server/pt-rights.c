/* peertree-server — rights: what the token a client said hello with allows,
 * checked for every request before its handler runs (pt-request.c), and for
 * GET /status.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * One table names the right every request type needs and the field that
 * names its object (a tree, room, client, service). A request type missing
 * from the table is refused: a new handler is closed until it gets a rule.
 * docs/protocol.md (Tokens and rights) has the same table.
 */
#include "pt-server-private.h"

#include <string.h>

typedef enum {
  RIGHT_NONE,       /* any client that said hello (the handler checks membership or ownership) */
  RIGHT_ADMIN,
  RIGHT_CREATE,     /* trees.publish on treeId (absent: the handler checks the id it picks) */
  RIGHT_REJOIN,     /* source: true: trees.publish, else trees.view, on treeId */
  RIGHT_VIEW,       /* trees.view on treeId */
  RIGHT_ROOM,       /* rooms on room */
  RIGHT_CLIENT,     /* clients on the field */
  RIGHT_OTHER_CLIENT, /* clients on the field, when present and not the sender */
  RIGHT_PROVIDE,    /* services.provide on service */
  RIGHT_CALL,       /* services.call on service; the peertree service: admin */
  RIGHT_SUBSCRIBE,  /* services.subscribe on "SERVICE/TOPIC" */
} Right;

typedef struct {
  const char *type;
  Right right;
  const char *field;
} Rule;

static const Rule rules[] = {
  { PT_REQ_HELLO, RIGHT_NONE, NULL },
  { PT_REQ_CREATE, RIGHT_CREATE, PT_F_TREE_ID },
  { PT_REQ_REJOIN, RIGHT_REJOIN, PT_F_TREE_ID },
  { PT_REQ_JOIN, RIGHT_VIEW, PT_F_TREE_ID },
  { PT_REQ_RECONNECT_UPSTREAM, RIGHT_VIEW, PT_F_TREE_ID },
  { PT_REQ_LEAVE, RIGHT_NONE, NULL },
  { PT_REQ_SIGNAL, RIGHT_NONE, NULL },          /* only to one's parent or child */
  { PT_REQ_REPORT, RIGHT_NONE, NULL },          /* only members */
  { PT_REQ_CAPACITY, RIGHT_NONE, NULL },        /* only members, about themselves */
  { PT_REQ_REPORT_RELAY, RIGHT_NONE, NULL },    /* only one's own parent */
  { PT_REQ_LIST_CLIENTS, RIGHT_ADMIN, NULL },
  { PT_REQ_IS_CONNECTED, RIGHT_CLIENT, PT_F_CLIENT_ID },
  { PT_REQ_EMIT, RIGHT_CLIENT, PT_F_TO },
  { PT_REQ_REPLY, RIGHT_NONE, NULL },           /* to an ackId one was given */
  { PT_REQ_ADD_TARGET, RIGHT_CLIENT, PT_F_TARGET },
  { PT_REQ_ROOM_JOIN, RIGHT_ROOM, PT_F_ROOM },
  { PT_REQ_ROOM_LEAVE, RIGHT_NONE, NULL },
  { PT_REQ_ROOM_EMIT, RIGHT_ROOM, PT_F_ROOM },
  { PT_REQ_LIST_ROOMS, RIGHT_OTHER_CLIENT, PT_F_CLIENT_ID },
  { PT_REQ_STREAM_OPEN, RIGHT_CLIENT, PT_F_TO },
  { PT_REQ_SERVICE_PROVIDE, RIGHT_PROVIDE, PT_F_SERVICE },
  { PT_REQ_SERVICE_WITHDRAW, RIGHT_NONE, NULL },  /* the provider only */
  { PT_REQ_SERVICE_CALL, RIGHT_CALL, PT_F_SERVICE },
  { PT_REQ_TOPIC_CREATE, RIGHT_NONE, NULL },      /* the provider only */
  { PT_REQ_TOPIC_DESTROY, RIGHT_NONE, NULL },
  { PT_REQ_TOPIC_PUBLISH, RIGHT_NONE, NULL },
  { PT_REQ_TOPIC_SUBSCRIBE, RIGHT_SUBSCRIBE, PT_F_SERVICE },
  { PT_REQ_TOPIC_UNSUBSCRIBE, RIGHT_NONE, NULL },
};

static const Rule *
find_rule (const char *type)
{
  for (gsize i = 0; i < G_N_ELEMENTS (rules); i++)
    if (strcmp (rules[i].type, type) == 0)
      return &rules[i];
  return NULL;
}

static gboolean
refuse (PtFault *f, const char *type, const char *what, const char *name)
{
  return pt_fault_set (f, PT_ERR_FORBIDDEN, "your token does not allow %s %s \"%.128s\"", type,
      what, name);
}

gboolean
pt_rights_check (PtConn *c, const char *type, JsonObject *msg, PtFault *f)
{
  const PtGrants *g = c->grants;
  if (!c->server->auth_key)
    return TRUE;
  const Rule *rule = find_rule (type);
  if (!rule)
    return pt_fault_set (f, PT_ERR_FORBIDDEN, "\"%.64s\" has no rule for tokens", type);
  if (rule->right == RIGHT_NONE)
    return TRUE;
  if (!g) /* cannot be: hello comes first, and needs a token */
    return pt_fault_set (f, PT_ERR_UNAUTHORIZED, "no token");
  if (g->admin)
    return TRUE;
  /* A field of the wrong type or absent reads as NULL: the handler refuses
   * it (bad-request) when it is required; each optional one is handled here. */
  const char *name = rule->field ? pt_str (msg, rule->field) : NULL;
  switch (rule->right) {
    case RIGHT_NONE:
      return TRUE;
    case RIGHT_ADMIN:
      return pt_fault_set (f, PT_ERR_FORBIDDEN, "%s needs an admin token", type);
    case RIGHT_CREATE:
      return !name || pt_grants_match (g->publish, name) ||
          refuse (f, "publishing", "tree", name);
    case RIGHT_REJOIN:
      if (pt_bool (msg, PT_F_SOURCE))
        return !name || pt_grants_match (g->publish, name) ||
            refuse (f, "publishing", "tree", name);
      return !name || pt_grants_match (g->view, name) || refuse (f, "viewing", "tree", name);
    case RIGHT_VIEW:
      return !name || pt_grants_match (g->view, name) || refuse (f, "viewing", "tree", name);
    case RIGHT_ROOM:
      return !name || pt_grants_match (g->rooms, name) || refuse (f, type, "in room", name);
    case RIGHT_CLIENT:
      return !name || pt_grants_match (g->clients, name) || refuse (f, type, "to client", name);
    case RIGHT_OTHER_CLIENT:
      return !name || g_strcmp0 (name, c->client_id) == 0 || pt_grants_match (g->clients, name) ||
          refuse (f, type, "of client", name);
    case RIGHT_PROVIDE:
      return !name || pt_grants_match (g->provide, name) ||
          refuse (f, "providing", "service", name);
    case RIGHT_CALL:
      if (g_strcmp0 (name, PT_SERVICE_PEERTREE) == 0)
        return pt_fault_set (f, PT_ERR_FORBIDDEN, "the service \"%s\" needs an admin token",
            PT_SERVICE_PEERTREE);
      return !name || pt_grants_match (g->call, name) || refuse (f, "calling", "service", name);
    case RIGHT_SUBSCRIBE: {
      const char *topic = pt_str (msg, PT_F_TOPIC);
      if (!name || !topic)
        return TRUE;
      g_autofree char *full = g_strconcat (name, "/", topic, NULL);
      return pt_grants_match (g->subscribe, full) || refuse (f, "subscribing to", "topic", full);
    }
  }
  g_return_val_if_reached (FALSE);
}

gboolean
pt_rights_can_relay (PtConn *c, const char *tree_id)
{
  /* a proxy of another server's client without its token (pt-cluster.c) may not */
  if (c->remote && c->server->auth_key && !c->grants)
    return FALSE;
  return !c->server->auth_key || !c->grants || c->grants->admin ||
      pt_grants_match (c->grants->relay, tree_id);
}

gboolean
pt_rights_can_publish (PtConn *c, const char *tree_id)
{
  if (c->remote && c->server->auth_key && !c->grants)
    return FALSE;
  return !c->server->auth_key || !c->grants || c->grants->admin ||
      pt_grants_match (c->grants->publish, tree_id);
}

guint
pt_rights_check_admin_header (PtServer *self, const char *authorization)
{
  if (!self->auth_key)
    return 0;
  if (!authorization || g_ascii_strncasecmp (authorization, "Bearer ", 7) != 0)
    return 401;
  const char *token = authorization + 7;
  while (*token == ' ')
    token++;
  g_autoptr (GError) error = NULL;
  g_autoptr (PtGrants) g = pt_auth_verify (self->auth_key, token,
      g_get_real_time () / G_USEC_PER_SEC, &error);
  if (!g) {
    g_debug ("GET /status: %s", error->message);
    return 401;
  }
  return g->admin ? 0 : 403;
}
