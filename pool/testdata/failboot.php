<?php

/** Test handlers: throws while the file loads, so the worker fails to start. */

declare(strict_types=1);

throw new RuntimeException('failboot: cannot connect to the database');
