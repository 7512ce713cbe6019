// The person at the verification page: opens the URL restoregate handed out, types the user
// code, confirms the device, signs in as the test account and approves (or, with `deny`, cancels
// on the consent page), with real form posts and a cookie jar, on oidc-provider's own pages.
//
//   node approve.mjs <verificationUrl> <userCode> <login> approve|deny
//
// Exits 0 when the pages said what was expected (success page, or the interrupted sign-in),
// non-zero with the page it was stuck on otherwise. Prints one line per page visited.
const [verificationUrl, userCode, login, mode = 'approve'] = process.argv.slice(2);
if (!verificationUrl || !userCode || !login || !['approve', 'deny'].includes(mode)) {
  console.error('usage: node approve.mjs <verificationUrl> <userCode> <login> approve|deny');
  process.exit(2);
}
const DEADLINE = Date.now() + 30_000;
const MAX_STEPS = 20;

// A cookie jar good enough for one host: name -> {value, path}; sent when the path matches.
const jar = new Map();
function storeCookies(response) {
  for (const header of response.headers.getSetCookie()) {
    const [pair, ...attributes] = header.split(';').map((s) => s.trim());
    const eq = pair.indexOf('=');
    const name = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    let path = '/';
    let expired = false;
    for (const a of attributes) {
      const [k, v = ''] = a.split('=');
      if (k.toLowerCase() === 'path') path = v || '/';
      if (k.toLowerCase() === 'expires' && Date.parse(v) < Date.now()) expired = true;
      if (k.toLowerCase() === 'max-age' && Number(v) <= 0) expired = true;
    }
    const key = `${name};${path}`;
    if (expired || value === '') jar.delete(key); else jar.set(key, { name, value, path });
  }
}
function cookieHeader(url) {
  const { pathname } = new URL(url);
  return [...jar.values()]
    .filter((c) => pathname === c.path || pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
    .map((c) => `${c.name}=${c.value}`)
    .join('; ');
}

async function request(method, url, form) {
  if (Date.now() > DEADLINE) throw new Error(`no end within 30 s (at ${method} ${url})`);
  const headers = { cookie: cookieHeader(url), 'user-agent': 'restoregate-interop/1 (person at the page)' };
  let body;
  if (form) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(form).toString();
  }
  const response = await fetch(url, {
    method, headers, body, redirect: 'manual', signal: AbortSignal.timeout(10_000),
  });
  storeCookies(response);
  const text = await response.text();
  console.log(`  ${method} ${new URL(url).pathname} -> ${response.status}`);
  return { status: response.status, location: response.headers.get('location'), text, url };
}

// Follows redirects (303/302) with GET, as a browser does after a form post.
async function visit(method, url, form) {
  let page = await request(method, url, form);
  while ([301, 302, 303, 307].includes(page.status) && page.location) {
    page = await request('GET', new URL(page.location, page.url).href);
  }
  return page;
}

const decode = (s) => s.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<')
  .replace(/&gt;/g, '>').replace(/&amp;/g, '&');

// The form with the given id (or the first form holding `marker`): its action and fields.
function form(html, baseUrl, { id, marker }) {
  const forms = [...html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)];
  const found = forms.find(([, attrs, inner]) => (id ? attrs.includes(`id="${id}"`) : inner.includes(marker)));
  if (!found) return undefined;
  const [, attrs, inner] = found;
  const action = decode((attrs.match(/action="([^"]*)"/) || [])[1] || baseUrl);
  const fields = {};
  for (const [input] of inner.matchAll(/<input\b[^>]*>/gi)) {
    const name = (input.match(/name="([^"]*)"/) || [])[1];
    const value = (input.match(/value="([^"]*)"/) || [])[1];
    if (name) fields[name] = decode(value ?? '');
  }
  return { action: new URL(action, baseUrl).href, fields };
}

function stuck(page, why) {
  const text = page.text.replace(/<style[\s\S]*?<\/style>/gi, '').replace(/<[^>]+>/g, ' ')
    .replace(/\s+/g, ' ').trim().slice(0, 600);
  throw new Error(`${why} at ${page.url} (HTTP ${page.status}): ${text}`);
}

async function main() {
  let page = await visit('GET', verificationUrl);
  for (let step = 0; step < MAX_STEPS; step += 1) {
    const { text } = page;
    if (/Sign-in Success/.test(text)) {
      if (mode !== 'approve') stuck(page, 'the sign-in succeeded although the person cancelled');
      console.log('  the page says: Sign-in Success');
      return;
    }
    if (/The Sign-in request was interrupted/.test(text) || /access_denied/.test(text)) {
      if (mode !== 'deny') stuck(page, 'the sign-in was interrupted');
      console.log('  the page says: the sign-in request was interrupted (access_denied)');
      return;
    }
    let f;
    if ((f = form(text, page.url, { id: 'op.deviceInputForm' }))) {
      console.log(`  enter the code ${userCode}`);
      page = await visit('POST', f.action, { ...f.fields, user_code: userCode });
    } else if ((f = form(text, page.url, { id: 'op.deviceConfirmForm' }))) {
      if (!text.includes(userCode)) stuck(page, `the confirmation page does not show the code ${userCode}`);
      console.log('  confirm the device (the code matches)');
      page = await visit('POST', f.action, f.fields);
    } else if ((f = form(text, page.url, { marker: 'name="prompt" value="login"' }))) {
      console.log(`  sign in as ${login}`);
      page = await visit('POST', f.action, { ...f.fields, login, password: 'not-checked-by-dev-interactions' });
    } else if ((f = form(text, page.url, { marker: 'name="prompt" value="consent"' }))) {
      if (mode === 'deny') {
        const cancel = (text.match(/<a href="([^"]*)">\[ Cancel \]<\/a>/) || [])[1];
        if (!cancel) stuck(page, 'no Cancel link on the consent page');
        console.log('  decline: [ Cancel ] on the consent page');
        page = await visit('GET', new URL(decode(cancel), page.url).href);
      } else {
        console.log('  approve: Continue on the consent page');
        page = await visit('POST', f.action, f.fields);
      }
    } else if (/Submitting Callback/.test(text) && (f = form(text, page.url, { marker: 'type="hidden"' }))) {
      // The auto-submitting form a GET with ?user_code= answers (JavaScript would post it).
      page = await visit('POST', f.action, f.fields);
    } else {
      stuck(page, 'no form this person knows what to do with');
    }
  }
  stuck(page, `no end after ${MAX_STEPS} pages`);
}

main().catch((e) => {
  console.error(`approve.mjs: ${e.message}`);
  process.exit(1);
});
