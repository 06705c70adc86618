// Prints, as JSON, the data distrib ships from the reference packages
// (tests/reference/regen_data.py turns it into distrib/render/data/references.json).
const gtld = require('twitter-text/dist/regexp/validGTLD').source;
const cctld = require('twitter-text/dist/regexp/validCCTLD').source;
const twemoji = require('twemoji-parser/dist/lib/regex').default.source;
const tlds = require('tlds');
process.stdout.write(JSON.stringify({gtld, cctld, twemoji, tlds}));
