"""The server tests that store, read, copy and delete file contents, run again with the
blobs in S3 (moto on loopback; the fixtures of this folder's conftest).

The subset: every storage test of ``tests/server/test_storage.py`` that goes through the API
(uploads, downloads, ranges, overwrite, copy, async copy, delete, quota, search), and the
multipart tests of ``test_api_misc.py``. Tests about the data dir's files themselves (symlinks,
paths on disk) stay file-store only: they inspect the file layout, which an S3 store does not
have. Each S3 round trip is a loopback HTTP call, so this adds a few seconds, not minutes.
"""

from __future__ import annotations

from tests.server.test_api_misc import (  # noqa: F401, E402
    test_multipart_any_order_and_twice,
    test_multipart_cross_account,
    test_multipart_errors,
    test_multipart_survives_restart,
)
from tests.server.test_kloudless_answers import (  # noqa: F401, E402
    test_multipart_without_size_and_with_integer_ids,
    test_multipart_without_size_checks_its_parts,
)
from tests.server.test_review_fixes import (  # noqa: F401, E402
    test_p1_1_claimed_session_refuses_complete_part_and_abort,
    test_p1_1_failed_complete_reopens_the_session,
    test_p2_1_over_long_part_refused,
)
from tests.server.test_storage import (  # noqa: F401
    test_async_copy_task,
    test_copy_file_and_folder,
    test_delete_file_and_folder,
    test_overwrite_false_renames_true_replaces,
    test_put_new_contents,
    test_ranges,
    test_recent_and_quota,
    test_upload_get_download,
    test_upload_unicode_name,
)
from tests.server.test_unit_of_work import (  # noqa: F401, E402
    test_an_interrupted_complete_can_be_completed_again,
)
