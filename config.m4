dnl perchild MPM -- platform support probe.
dnl
dnl httpd's configure reads every server/mpm/*/config.m4 before it decides
dnl which MPMs get built (that happens in server/mpm/config2.m4), so all this
dnl file does is tell the MPM machinery whether perchild can work here.
dnl The shell variables tested below are set by server/mpm/config.m4.
dnl
dnl perchild is a threaded MPM that forks one child process per configured
dnl user and hands connections between processes over AF_UNIX sockets.
dnl It is developed and tested on Linux only.

AC_MSG_CHECKING(if perchild MPM supports this platform)
case $host in
    *-linux*)
        ap_perchild_host_ok=yes
        ;;
    *)
        ap_perchild_host_ok=no
        ;;
esac

if test "$ap_perchild_host_ok" != "yes"; then
    AC_MSG_RESULT(no - perchild is only supported on Linux)
elif test "$forking_mpms_supported" != "yes"; then
    AC_MSG_RESULT(no - perchild needs fork() and this platform lacks it)
elif test "$ac_cv_define_APR_HAS_THREADS" != "yes"; then
    AC_MSG_RESULT(no - perchild needs an APR built with thread support)
elif test "$have_threaded_sig_graceful" != "yes"; then
    AC_MSG_RESULT(no - threaded MPMs cannot use SIG_GRACEFUL here)
else
    AC_MSG_RESULT(yes)
    dnl arguments: name, may be built as a DSO, is threaded
    APACHE_MPM_SUPPORTED(perchild, yes, yes)
fi
