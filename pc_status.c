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

/* pc_status.c: adds each child's pool to mod_status's report, through
 * mod_status's optional status_hook (a no-op when mod_status is not
 * loaded). */

#include "perchild.h"
#include "http_protocol.h"
#include "mod_status.h"

static void count_workers(int slot, int *busy, int *idle)
{
    int t;

    *busy = *idle = 0;
    for (t = 0; t < pc_conf->threads_per_child; t++) {
        worker_score *ws = ap_get_scoreboard_worker_from_indexes(slot, t);
        if (ws == NULL) {
            continue;
        }
        if (ws->status == SERVER_READY) {
            (*idle)++;
        }
        else if (ws->status != SERVER_DEAD && ws->status != SERVER_STARTING
                 && ws->status != SERVER_IDLE_KILL) {
            (*busy)++;
        }
    }
}

static void row(request_rec *r, int slot, int flags)
{
    process_score *ps = ap_get_scoreboard_process(slot);
    const char *pool = pc_pools_label(pc_pools_get(
                                          pc_pools_pool_of_slot(slot)));
    int busy, idle;

    /* A dispatch child's keep-alive connections that wait without a
     * worker (pc_park.c) are in no worker's row: count them here. */
    unsigned parked = ps ? (unsigned)ps->keep_alive : 0;

    count_workers(slot, &busy, &idle);
    if (flags & AP_STATUS_SHORT) {
        ap_rprintf(r, "PerchildChild%d: pid=%" APR_PID_T_FMT " pool=%s "
                   "busy=%d idle=%d parked=%u\n", slot, ps ? ps->pid : 0,
                   ap_escape_html(r->pool, pool), busy, idle, parked);
        return;
    }
    ap_rprintf(r, "<tr><td>%d</td><td>%" APR_PID_T_FMT "</td><td>%s</td>"
               "<td>%d</td><td>%d</td><td>%u</td></tr>\n", slot,
               ps ? ps->pid : 0, ap_escape_html(r->pool, pool), busy, idle,
               parked);
}

static int status_hook(request_rec *r, int flags)
{
    int slot;

    if (pc_conf == NULL || pc_conf->pools == NULL) {
        return OK;
    }
    if (!(flags & AP_STATUS_SHORT)) {
        ap_rputs("<hr /><h2>perchild pools</h2>\n<table border=\"1\">"
                 "<tr><th>Slot</th><th>PID</th><th>Pool (user:group)</th>"
                 "<th>Busy</th><th>Idle</th><th>Parked keep-alive</th>"
                 "</tr>\n", r);
    }
    for (slot = 0; slot < pc_conf->total_children; slot++) {
        row(r, slot, flags);
    }
    if (!(flags & AP_STATUS_SHORT)) {
        ap_rputs("</table>\n", r);
    }
    return OK;
}

void pc_status_register_hooks(apr_pool_t *p)
{
    APR_OPTIONAL_HOOK(ap, status_hook, status_hook, NULL, NULL,
                      APR_HOOK_MIDDLE);
}
