dnl perchild MPM -- build description.
dnl
dnl This runs after server/mpm/config2.m4 has settled which MPMs are
dnl enabled (--with-mpm / --enable-mpms-shared) and how: $enable_mpm_perchild
dnl is "shared" for a DSO build and empty for a static one.
dnl
dnl Object list: mpm_perchild.lo first, then one .lo for every other .c file
dnl (pc_*.c and friends) present in the MPM's source directory when
dnl configure runs.  Adding a source file therefore needs only a re-run of
dnl buildconf/configure, never an edit here.  The glob is evaluated by the
dnl shell at configure time; $abs_srcdir is set near the top of httpd's
dnl configure.in and keeps this right for VPATH builds too.

ap_perchild_srcdir="${abs_srcdir:-$srcdir}/server/mpm/perchild"
ap_perchild_objects="mpm_perchild.lo"
for ap_perchild_src in "$ap_perchild_srcdir"/*.c; do
    dnl an unmatched glob stays literal, hence the -f test
    test -f "$ap_perchild_src" || continue
    ap_perchild_obj=`echo "$ap_perchild_src" | sed -e 's,.*/,,' -e 's,\.c$,.lo,'`
    test "$ap_perchild_obj" = "mpm_perchild.lo" && continue
    ap_perchild_objects="$ap_perchild_objects $ap_perchild_obj"
done

dnl Extra libraries for the MPM; empty unless one turns out to be needed.
dnl Kept as a make variable so it can also be set on the make command line.
APACHE_SUBST(MOD_MPM_PERCHILD_LDADD)

APACHE_MPM_MODULE(perchild, $enable_mpm_perchild, $ap_perchild_objects, [
    AC_MSG_CHECKING(which objects make up the perchild MPM)
    AC_MSG_RESULT($ap_perchild_objects)
    AC_CHECK_FUNCS(pthread_kill setresuid setresgid)
], , [\$(MOD_MPM_PERCHILD_LDADD)])
