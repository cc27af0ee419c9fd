// DOM helpers. Every piece of user data reaches the page as a text node or an attribute value,
// never as markup: there is deliberately no helper that takes HTML.

/** Creates an element: h('button', {class: 'x', onclick: fn, 'aria-label': 'Send'}, 'text', child). */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) {
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') el.className = value;
      else if (key === 'text') el.textContent = value;
      else if (key === 'dataset') Object.assign(el.dataset, value);
      else if (key.startsWith('on')) {
        // Only functions: a string here would become an inline handler attribute (markup).
        if (typeof value === 'function') el.addEventListener(key.slice(2), value);
      }
      else if (key === 'value') el.value = value;
      else if (key === 'checked') el.checked = !!value;
      else el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Replaces all children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

/** Announces `text` to screen readers. */
export function announce(text) {
  const live = document.getElementById('live');
  if (!live) return;
  live.textContent = '';
  setTimeout(() => { live.textContent = text; }, 30);
}

/** Runs `fn` at most once per animation frame. */
export function rafThrottle(fn) {
  let scheduled = false;
  return (...args) => {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => { scheduled = false; fn(...args); });
  };
}

/** Calls `fn` `ms` after the last call. */
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

/** Simple inline SVG icons built with DOM APIs (no markup strings). */
const ICONS = {
  menu: 'M4 6h16M4 12h16M4 18h16',
  search: 'M11 4a7 7 0 1 0 0 14 7 7 0 0 0 0-14zm9 16-4.3-4.3',
  send: 'M4 12 20 4l-4 16-4-7z M12 13l8-9',
  back: 'M15 5l-7 7 7 7',
  close: 'M6 6l12 12M18 6 6 18',
  more: 'M12 6h.01M12 12h.01M12 18h.01',
  reply: 'M10 8 4 13l6 5v-3.5c4 0 7 1 10 4.5-1-5-4-9-10-9.5z',
  edit: 'M4 20h4L19 9l-4-4L4 16zm10-14 4 4',
  trash: 'M5 7h14M10 11v6M14 11v6M6 7l1 13h10l1-13M9 7V4h6v3',
  pin: 'M9 4h6l-1 6 4 3H6l4-3zM12 13v7',
  forward: 'M14 8l6 5-6 5v-3.5c-4 0-7 1-10 4.5 1-5 4-9 10-9.5z',
  copy: 'M8 8h11v12H8zM5 16V4h11',
  smile: 'M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18zM8.5 14.5c2 2 5 2 7 0M9 9.5h.01M15 9.5h.01',
  users: 'M9 11a4 4 0 1 0 0-8 4 4 0 0 0 0 8zM2 21c0-4 3-6 7-6s7 2 7 6M17 11a3 3 0 0 0 0-6M22 21c0-3-2-5-5-5.5',
  info: 'M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18zM12 11v6M12 7.5h.01',
  down: 'M6 9l6 6 6-6',
  plus: 'M12 5v14M5 12h14',
  moon: 'M20 14.5A8 8 0 0 1 9.5 4 8 8 0 1 0 20 14.5z',
  globe: 'M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18zM3 12h18M12 3c3 3 3 15 0 18M12 3c-3 3-3 15 0 18',
  devices: 'M3 5h14v10H3zM8 19h4M10 15v4M19 9h3v10h-3z',
  logout: 'M15 4h4v16h-4M10 8l-4 4 4 4M6 12h10',
  bookmark: 'M6 3h12v18l-6-4-6 4z',
  megaphone: 'M4 10v4h3l7 4V6L7 10zM17 9a4 4 0 0 1 0 6',
  bot: 'M6 8h12v10H6zM12 8V4M9 12h.01M15 12h.01M9 15h6M3 12v3M21 12v3',
  check: 'M5 12l4 4L19 6',
  checks: 'M2 12l4 4L16 6M10 15l1 1L22 6',
  clock: 'M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18zM12 7v5l3 2',
  alert: 'M12 3 2 20h20zM12 10v4M12 17h.01',
  keyboard: 'M3 6h18v12H3zM7 10h.01M11 10h.01M15 10h.01M7 14h10',
  external: 'M14 4h6v6M20 4l-9 9M18 14v6H4V6h6',
};

export function icon(name, label) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('class', 'icon icon-' + name);
  if (label) { svg.setAttribute('role', 'img'); svg.setAttribute('aria-label', label); }
  else svg.setAttribute('aria-hidden', 'true');
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', ICONS[name] || ICONS.info);
  svg.appendChild(path);
  return svg;
}

// The tab title: the open chat's name with the total unread count in front, like "(3) Project · Vestnik".
let titleBase = 'Vestnik';
let titleUnread = 0;
function applyTitle() { document.title = (titleUnread ? `(${titleUnread > 99 ? '99+' : titleUnread}) ` : '') + titleBase; }
export function setTitle(base) { titleBase = base; applyTitle(); }
export function setUnreadTotal(n) { if (n !== titleUnread) { titleUnread = n; applyTitle(); } }
