#!/bin/sh
# dracut cmdline hook: metalroot's generator handles root=live: and
# root=iscsi:, so tell dracut-cmdline not to stop the boot with
# "Don't know how to handle 'root=…'" (dmsquash-live and iscsi, which would
# otherwise claim them, are not in a metalroot initrd).
case "$root" in
    live:* | iscsi:*) rootok=1 ;;
esac
