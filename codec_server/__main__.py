"""`python -m codec_server [--host H] [--port P]`: see `codec_server/app.py`."""

from codec_server.app import main
from runtime.process import exit_now

exit_now(main())
