// The reference implementations, run once over a batch of texts.
// stdin: a JSON array of strings; stdout: a JSON array, one result per text:
//   x: [weightedLength, valid]       twitter-text 3.1.0 parseTweet (v3 config)
//   x2: [weightedLength, valid]      the same with the v2 config (no emoji parsing)
//   mastodon: grapheme count          URLs as twitter-text extracts them with a scheme
//                                     required, counted as 23; @user@domain as @user
//   bluesky: [[byteStart, byteEnd, feature, value], ...]
//                                     @atproto/api detectFacetsWithoutResolution
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';

const require = createRequire(import.meta.url);
const twitter = require('twitter-text');
const { RichText } = await import('@atproto/api');

// Mastodon: app/models/account.rb MENTION_RE ([[:word:]] = letters, marks, digits,
// connector punctuation) and twitter-text's end_mention_match.
const WORD = '[\\p{L}\\p{M}\\p{Nd}\\p{Pc}]';
const MENTION = new RegExp(
  `(?<![=/]|${WORD})@((?<user>[a-z0-9_]+(?:[.\\-]+[a-z0-9_]+)*)(?:@${WORD}+(?:[.\\-]+${WORD}+)*)?)`, 'giu');
const END_MENTION = /^(?:[@\uff20\xC0-\xD6\xD8-\xF6\xF8-\xFF\u0100-\u024F\u0253\u0254\u0256\u0257\u0259\u025B\u0263\u0268\u026F\u0272\u0289\u028B\u02BB\u0300-\u036F\u1E00-\u1EFF]|:\/\/)/u;
const segmenter = new Intl.Segmenter('en', { granularity: 'grapheme' });

function mastodon(text, urlLength = 23) {
  const entities = twitter.extractUrlsWithIndices(text, { extractUrlsWithoutProtocol: false })
    .map((u) => ({ start: u.indices[0], end: u.indices[1], repl: 'x'.repeat(urlLength) }));
  for (const m of text.matchAll(MENTION)) {
    const end = m.index + m[0].length;
    if (END_MENTION.test(text.slice(end))) continue;
    entities.push({ start: m.index, end, repl: '@' + m.groups.user });
  }
  entities.sort((a, b) => a.start - b.start);
  let out = '';
  let pos = 0;
  for (const e of entities) {
    if (e.start < pos) continue; // twitter-text removeOverlappingEntities
    out += text.slice(pos, e.start) + e.repl;
    pos = e.end;
  }
  out += text.slice(pos);
  return [...segmenter.segment(out)].length;
}

function bluesky(text) {
  const rt = new RichText({ text });
  rt.detectFacetsWithoutResolution();
  return (rt.facets || []).map((f) => {
    const feature = f.features[0];
    const kind = feature.$type.split('#')[1];
    const value = feature.uri ?? feature.tag ?? feature.did;
    return [f.index.byteStart, f.index.byteEnd, kind, value];
  });
}

const v2 = twitter.configs.version2;
const texts = JSON.parse(readFileSync(0, 'utf8'));
const results = texts.map((text) => {
  const p = twitter.parseTweet(text);
  const q = twitter.parseTweet(text, v2);
  return {
    x: [p.weightedLength, p.valid],
    x2: [q.weightedLength, q.valid],
    mastodon: mastodon(text),
    bluesky: bluesky(text),
  };
});
process.stdout.write(JSON.stringify(results));
