<?php
// Says nothing and never ends: the aggregator's timeout kills it (what it
// printed first would depend on how fast PHP started).
while (true) {
    usleep(10000);
}
