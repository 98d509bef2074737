<?php
// What PHP says of the main script's file (the CLI stats its real path).
var_dump(getmyuid(), getmygid(), getmyinode() === fileinode(__FILE__), getlastmod() === filemtime(__FILE__), get_current_user());
