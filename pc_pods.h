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

/* pc_pods.h: one pipe of death per pool, and a graceful restart that
 * stops each pool's old children only once its new ones are forked. */

#ifndef PC_PODS_H
#define PC_PODS_H

#include "httpd.h"
#include "mpm_common.h"

/* Parent, each generation (open_logs): this generation's pipes, one per
 * pool; they close when httpd next clears 'plog', its log pool, unless
 * a graceful restart claims them.  Returns OK or not. */
int pc_pods_open(apr_pool_t *plog, server_rec *s, int startup);

/* Parent: tells every child of this generation to stop ('mode'). */
void pc_pods_signal(ap_podx_restart_t mode);

/* Parent, on a graceful restart: this generation's children go on
 * serving while the configuration is read again; each pool's are told
 * to stop when the new generation's first child of the same user is
 * forked (pc_pods_successor_started), the rest by pc_pods_retire_rest.
 * Unless pc_pods_claim keeps them, their pipes close when httpd clears
 * its log pool, and they stop as under worker. */
void pc_pods_keep_for_successors(void);

/* Parent, at pre_config: the previous generation's pipes, kept for a
 * graceful hand-over, stay open past the log pool's clearing.  'ours':
 * this module ran the previous generation (httpd's baton). */
void pc_pods_claim(apr_pool_t *plog, int ours);

/* Parent: pool 'pool' of this generation has a child now; the previous
 * generation's children of the same user are told to stop gracefully. */
void pc_pods_successor_started(int pool);

/* Parent, after the first round of forks of a generation, and when it
 * stops: the previous generation's children not told yet (their user
 * has no pool now, or its pool could not start) are, and its pipes are
 * closed. */
void pc_pods_retire_rest(void);

/* Child, right after fork: keeps the reading end of its own pool's pipe
 * and closes every other end of every generation's pipes.  Returns the
 * pipe kept (NULL in one-process mode). */
ap_pod_t *pc_pods_child_keep(int pool);

#endif /* PC_PODS_H */
