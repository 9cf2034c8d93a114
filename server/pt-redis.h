/* peertree-server — hiredis on a GMainContext: a GSource per
 * redisAsyncContext, and the redis:// URL.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "pt-config.h"

#include <glib.h>

#if PT_HAVE_REDIS
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

/* Attaches @ac to @context: its socket is watched for what hiredis asks
 * (reads, writes), and redisAsyncHandleRead/Write run from the loop. The
 * source goes away with @ac (hiredis' cleanup hook). */
void pt_redis_attach (redisAsyncContext *ac, GMainContext *context);
#endif

/* Parses redis://HOST[:PORT][/DB] (port 6379, db 0 by default). */
gboolean pt_redis_parse_url (const char *url, char **host, guint *port, guint *db,
    GError **error);
