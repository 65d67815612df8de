/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 *
 * Unless required by applicable law or agreed to in writing, software
 * distributed under the License is distributed on an "AS IS" BASIS,
 * WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
 * See the License for the specific language governing permissions and
 * limitations under the License.
 */

/* pc_handoff.c: the per-request ownership check.
 *
 * At post_read_request (first among the hooks, before any module can
 * act on the request) a child compares the pool of the request's vhost
 * with its own.  A request for another pool's vhost is never served
 * here: it is refused with 503 and logged.  (The hand-off of the
 * connection to the owner's child slots in at this same point.)
 */

#include "perchild.h"
#include "pc_handoff.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "apr_strings.h"

#include <stdlib.h>

APLOG_USE_MODULE(mpm_perchild);

void pc_handoff_child_init(apr_pool_t *pchild, int pool)
{
}

int pc_handoff_channel_fd(int pool)
{
    return -1;
}

apr_status_t pc_handoff_receive(int chan, pc_passed_t *out)
{
    return APR_ENOTIMPL;
}

void pc_handoff_adopt(conn_rec *c, pc_passed_t *passed)
{
    pc_handoff_passed_done(passed);
}

void pc_handoff_passed_done(pc_passed_t *passed)
{
    free(passed->bytes);
    passed->bytes = NULL;
    passed->len = 0;
}

/* Answers 503 ourselves rather than through ap_die: a vhost's
 * ErrorDocument would run an internal redirect here, in the wrong
 * user's process. */
static int refuse(request_rec *r, const pc_pool_t *want)
{
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                  "PC0301: request for vhost %s (pool %s) reached a child "
                  "of pool %s; refusing with 503",
                  r->server->server_hostname ? r->server->server_hostname
                                             : "?",
                  pc_pools_label(want),
                  pc_pools_label(pc_pools_get(pc_my_pool)));
    r->connection->keepalive = AP_CONN_CLOSE;
    r->status = HTTP_SERVICE_UNAVAILABLE;
    apr_table_setn(r->err_headers_out, "Retry-After", "5");
    ap_set_content_type(r, "text/plain; charset=ISO-8859-1");
    ap_rputs("503 Service Unavailable: this site's server is not "
             "available.\n", r);
    return DONE;
}

static int check_owner(request_rec *r)
{
    pc_server_conf_t *sc;

    if (pc_my_pool < 0 || r->main != NULL || r->prev != NULL) {
        return DECLINED;
    }
    sc = PC_SERVER_CONF(r->server);
    if (sc->pool == pc_my_pool) {
        return DECLINED;
    }
    return refuse(r, pc_pools_get(sc->pool));
}

void pc_handoff_register_hooks(apr_pool_t *p)
{
    /* REALLY_FIRST: no other module may see a request this process must
     * not serve. */
    ap_hook_post_read_request(check_owner, NULL, NULL, APR_HOOK_REALLY_FIRST);
}
