/* peertree-server — hiredis' async API driven by a GLib main loop.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * hiredis asks its event library to watch its socket for reading and writing
 * through five hooks (ac->ev); here they set the condition of one unix-fd tag
 * of a GSource. The source is destroyed by the cleanup hook, which hiredis
 * calls when it frees the context (disconnection or redisAsyncFree), so a
 * dispatch never sees a freed context.
 */
#include "pt-redis.h"

#include <gio/gio.h>
#include <stdlib.h>
#include <string.h>

#if PT_HAVE_REDIS
typedef struct {
  GSource source;
  redisAsyncContext *ac; /* NULL once hiredis cleaned up */
  gpointer tag;
  GIOCondition cond;
} PtRedisSource;

static void
source_update (PtRedisSource *s, GIOCondition add, GIOCondition del)
{
  if (!s->ac)
    return;
  s->cond = (s->cond | add) & ~del;
  g_source_modify_unix_fd ((GSource *) s, s->tag, s->cond | G_IO_HUP | G_IO_ERR);
}

static void add_read (void *p) { source_update (p, G_IO_IN, 0); }
static void del_read (void *p) { source_update (p, 0, G_IO_IN); }
static void add_write (void *p) { source_update (p, G_IO_OUT, 0); }
static void del_write (void *p) { source_update (p, 0, G_IO_OUT); }

static void
cleanup (void *p)
{
  PtRedisSource *s = p;
  if (!s->ac)
    return;
  s->ac = NULL;
  g_source_remove_unix_fd ((GSource *) s, s->tag);
  g_source_destroy ((GSource *) s);
}

static gboolean
source_dispatch (GSource *source, GSourceFunc callback, gpointer user_data)
{
  PtRedisSource *s = (PtRedisSource *) source;
  if (!s->ac)
    return G_SOURCE_REMOVE;
  GIOCondition r = g_source_query_unix_fd (source, s->tag);
  if (s->ac && (r & G_IO_OUT))
    redisAsyncHandleWrite (s->ac);
  /* hiredis reads EOF or the error itself, and disconnects */
  if (s->ac && (r & (G_IO_IN | G_IO_HUP | G_IO_ERR)))
    redisAsyncHandleRead (s->ac);
  return G_SOURCE_CONTINUE;
}

void
pt_redis_attach (redisAsyncContext *ac, GMainContext *context)
{
  static GSourceFuncs funcs = { .dispatch = source_dispatch };
  PtRedisSource *s = (PtRedisSource *) g_source_new (&funcs, sizeof (PtRedisSource));
  g_source_set_static_name ((GSource *) s, "pt-redis");
  s->ac = ac;
  /* the non-blocking connect completes when the socket becomes writable */
  s->cond = G_IO_OUT;
  s->tag = g_source_add_unix_fd ((GSource *) s, ac->c.fd, s->cond | G_IO_HUP | G_IO_ERR);
  ac->ev.data = s;
  ac->ev.addRead = add_read;
  ac->ev.delRead = del_read;
  ac->ev.addWrite = add_write;
  ac->ev.delWrite = del_write;
  ac->ev.cleanup = cleanup;
  g_source_attach ((GSource *) s, context);
  g_source_unref ((GSource *) s); /* the context holds it until cleanup */
}
#endif

gboolean
pt_redis_parse_url (const char *url, char **host, guint *port, guint *db, GError **error)
{
  g_autofree char *hostport = NULL;
  *host = NULL;
  *port = 6379;
  *db = 0;
  if (!url || !g_str_has_prefix (url, "redis://"))
    goto bad;
  const char *p = url + strlen ("redis://");
  const char *slash = strchr (p, '/');
  hostport = slash ? g_strndup (p, slash - p) : g_strdup (p);
  char *colon = strrchr (hostport, ':');
  if (colon) {
    guint64 v;
    if (!g_ascii_string_to_unsigned (colon + 1, 10, 1, 65535, &v, NULL))
      goto bad;
    *port = v;
    *colon = '\0';
  }
  if (!*hostport || strlen (hostport) > 255)
    goto bad;
  if (slash && slash[1]) {
    guint64 v;
    if (!g_ascii_string_to_unsigned (slash + 1, 10, 0, 65535, &v, NULL))
      goto bad;
    *db = v;
  }
  *host = g_strdup (hostport);
  return TRUE;
bad:
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
      "\"%s\" is not redis://HOST[:PORT][/DB]", url ? url : "");
  return FALSE;
}
