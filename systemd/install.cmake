# install.cmake: `cmake --install` step for the systemd files, run at install time (so the
# prefix given to --install and DESTDIR are honoured). The top-level CMakeLists.txt sets
# BOLTZ_SOURCE_DIR, BOLTZ_STAGE_DIR and the BOLTZ_*DIR variables before including this.
#   <prefix>/lib/systemd/system/boltzd.service   the unit (ExecStart = the installed binary)
#   <prefix>/lib/sysusers.d/boltzd.conf           the boltzd user and group
#   <prefix>/lib/tmpfiles.d/boltzd.conf           /var/lib/boltzd, /etc/boltzd
#   <prefix>/share/boltzd/boltzd.conf.example     the example configuration, always refreshed
#   /etc/boltzd/boltzd.conf                       the same, only when there is none yet
#   <prefix>/share/doc/boltzd/README.md           the unit's Documentation=
set(BOLTZ_PREFIX "${CMAKE_INSTALL_PREFIX}")

function(boltz_dir out rel)
  if(IS_ABSOLUTE "${rel}")
    set(${out} "${rel}" PARENT_SCOPE)
  else()
    set(${out} "${BOLTZ_PREFIX}/${rel}" PARENT_SCOPE)
  endif()
endfunction()

boltz_dir(unit_dir "${BOLTZ_SYSTEMD_UNITDIR}")
boltz_dir(sysusers_dir "${BOLTZ_SYSUSERSDIR}")
boltz_dir(tmpfiles_dir "${BOLTZ_TMPFILESDIR}")

file(MAKE_DIRECTORY "${BOLTZ_STAGE_DIR}/sysusers" "${BOLTZ_STAGE_DIR}/tmpfiles")
configure_file("${BOLTZ_SOURCE_DIR}/systemd/boltzd.service.in" "${BOLTZ_STAGE_DIR}/boltzd.service" @ONLY)
configure_file("${BOLTZ_SOURCE_DIR}/systemd/boltzd.conf.in" "${BOLTZ_STAGE_DIR}/boltzd.conf.example" @ONLY)
configure_file("${BOLTZ_SOURCE_DIR}/systemd/boltzd.sysusers" "${BOLTZ_STAGE_DIR}/sysusers/boltzd.conf" COPYONLY)
configure_file("${BOLTZ_SOURCE_DIR}/systemd/boltzd.tmpfiles" "${BOLTZ_STAGE_DIR}/tmpfiles/boltzd.conf" COPYONLY)

file(INSTALL DESTINATION "${unit_dir}" TYPE FILE PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
     FILES "${BOLTZ_STAGE_DIR}/boltzd.service")
file(INSTALL DESTINATION "${sysusers_dir}" TYPE FILE FILES "${BOLTZ_STAGE_DIR}/sysusers/boltzd.conf")
file(INSTALL DESTINATION "${tmpfiles_dir}" TYPE FILE FILES "${BOLTZ_STAGE_DIR}/tmpfiles/boltzd.conf")
file(INSTALL DESTINATION "${BOLTZ_PREFIX}/share/boltzd" TYPE FILE FILES "${BOLTZ_STAGE_DIR}/boltzd.conf.example")
file(INSTALL DESTINATION "${BOLTZ_PREFIX}/share/doc/boltzd" TYPE FILE FILES "${BOLTZ_SOURCE_DIR}/README.md")

# The live configuration: never overwritten (an upgrade keeps the operator's settings).
if(EXISTS "$ENV{DESTDIR}${BOLTZ_CONFIG_DIR}/boltzd.conf")
  message(STATUS "Keeping: $ENV{DESTDIR}${BOLTZ_CONFIG_DIR}/boltzd.conf (the new example is share/boltzd/boltzd.conf.example)")
else()
  file(INSTALL DESTINATION "${BOLTZ_CONFIG_DIR}" TYPE FILE RENAME boltzd.conf
       FILES "${BOLTZ_STAGE_DIR}/boltzd.conf.example")
endif()
