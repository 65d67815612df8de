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

/* pc_affinity.c: PerchildCPUAffinity, hand-offs that stay on one CPU.
 *
 * Waking a thread on another CPU is the dearest part of a hand-off
 * (an inter-processor interrupt, an idle CPU woken; several times the
 * cost of the pass itself).  With PerchildCPUAffinity On, a pool of n
 * children gets k = min(n, CPUs) "ways": child i is pinned to the CPUs
 * of way i % k and reads the channel of that way, and a sender passes
 * to the way of the CPU it runs on.  The owner's worker then wakes on
 * the sender's CPU, as the sender goes idle.  What a pinned child
 * forks (CGI) gets the server's CPUs back right after fork.
 */

#include "perchild.h"
#include "pc_affinity.h"
#include "http_log.h"
#include "http_main.h"

#include <errno.h>

#include <pthread.h>
#include <sched.h>

APLOG_USE_MODULE(mpm_perchild);

static cpu_set_t all_cpus;       /* the parent's own CPUs */
static int cpus[CPU_SETSIZE];    /* their numbers, ascending */
static int ncpus;

/* Pinned children only share the load when new connections reach
 * children on every CPU: the kernel's wake-up order would otherwise send
 * them all to the first idle child, on one CPU. */
void pc_affinity_warn(server_rec *s)
{
    if (!pc_conf->cpu_affinity || pc_one_process) {
        return;
    }
    if (ncpus < 2) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                     "PC0502: PerchildCPUAffinity has nothing to do with "
                     "one CPU");
    }
    else if (pc_conf->num_buckets < ncpus) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "PC0503: PerchildCPUAffinity On with %d listener "
                     "bucket(s) for %d CPUs: new connections are not spread "
                     "over the CPUs; set ListenCoresBucketsRatio 1",
                     pc_conf->num_buckets, ncpus);
    }
}

void pc_affinity_init(void)
{
    int c;

    ncpus = 0;
    if (sched_getaffinity(0, sizeof(all_cpus), &all_cpus) == -1) {
        CPU_ZERO(&all_cpus);
        return;
    }
    for (c = 0; c < CPU_SETSIZE; c++) {
        if (CPU_ISSET(c, &all_cpus)) {
            cpus[ncpus++] = c;
        }
    }
}

int pc_affinity_ways(const pc_pool_t *pl)
{
    if (!pc_conf->cpu_affinity || pc_one_process || ncpus < 2
        || pl->slots < 2) {
        return 1;
    }
    return pl->slots < ncpus ? pl->slots : ncpus;
}

static void unpin_after_fork(void)
{
    /* What a child forks (CGI) may run on any CPU again. */
    sched_setaffinity(0, sizeof(all_cpus), &all_cpus);
}

int pc_affinity_pin_child(const pc_pool_t *pl, int slot)
{
    int ways = pc_affinity_ways(pl), way, j;
    cpu_set_t set;

    if (ways < 2) {
        return 0;
    }
    way = (slot - pl->first_slot) % ways;
    CPU_ZERO(&set);
    for (j = way; j < ncpus; j += ways) {
        CPU_SET(cpus[j], &set);
    }
    if (sched_setaffinity(0, sizeof(set), &set) == -1) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, errno, ap_server_conf,
                     "PC0501: cannot pin this child of pool %s to its "
                     "CPUs; it runs unpinned", pl->label);
    }
    pthread_atfork(NULL, NULL, unpin_after_fork);
    return way;
}

int pc_affinity_sender_way(int ways)
{
    int cpu, j;

    if (ways < 2 || (cpu = sched_getcpu()) < 0) {
        return 0;
    }
    for (j = 0; j < ncpus; j++) {
        if (cpus[j] == cpu) {
            return j % ways;
        }
    }
    return cpu % ways;
}
