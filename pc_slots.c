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

/* pc_slots.c: the parent's own record of the child in each slot.
 *
 * httpd's MPMs keep each child's pid and generation in the scoreboard,
 * which every child maps writable (its workers write their status
 * there).  Under perchild a child is a tenant's process: in-process code
 * could write another pool's child's pid over with anything, and a
 * parent that believed it would never see that child exit, never
 * replace it, and leave its pool's vhosts unanswered.  The parent
 * therefore decides from this record, in its own memory, and writes it
 * back over the scoreboard (for httpd's own helpers and mod_status)
 * before each use. */

#include "perchild.h"
#include "http_main.h"
#include "scoreboard.h"

typedef struct pc_kid_t {
    pid_t pid;               /* 0: no child */
    ap_generation_t gen;
} pc_kid_t;

static pc_kid_t *kids(void)
{
    if (pc_retained->kids == NULL) {
        /* Sized by the scoreboard, which outlives every generation. */
        pc_retained->kids = apr_pcalloc(ap_pglobal,
                                        pc_retained->first_server_limit
                                        * sizeof(pc_kid_t));
    }
    return pc_retained->kids;
}

void pc_slots_set(int slot, pid_t pid, ap_generation_t gen)
{
    process_score *ps = &ap_scoreboard_image->parent[slot];

    kids()[slot].pid = pid;
    kids()[slot].gen = gen;
    ps->pid = pid;
    ps->generation = gen;
}

void pc_slots_clear(int slot)
{
    kids()[slot].pid = 0;
    ap_scoreboard_image->parent[slot].pid = 0;
}

pid_t pc_slots_pid(int slot)
{
    return kids()[slot].pid;
}

ap_generation_t pc_slots_gen(int slot)
{
    return kids()[slot].gen;
}

int pc_slots_find(pid_t pid)
{
    int i;

    for (i = 0; pid > 0 && i < pc_retained->max_daemons_limit; i++) {
        if (kids()[i].pid == pid) {
            return i;
        }
    }
    return -1;
}

void pc_slots_publish(void)
{
    int i;

    for (i = 0; i < pc_retained->max_daemons_limit; i++) {
        process_score *ps = &ap_scoreboard_image->parent[i];

        ps->pid = kids()[i].pid;
        if (kids()[i].pid != 0) {
            ps->generation = kids()[i].gen;
        }
    }
}
