/** Reading and checking form controls: each bad value gets one line naming the control. */

export class FormError extends Error {
  override name = 'FormError';
}

function control(form: HTMLFormElement, name: string): HTMLInputElement | HTMLSelectElement {
  const el = form.elements.namedItem(name);
  if (!(el instanceof HTMLInputElement || el instanceof HTMLSelectElement)) {
    throw new Error(`No control named '${name}' in #${form.id}.`);
  }
  return el;
}

function labelOf(el: HTMLElement): string {
  const label = el.closest('label');
  const text = label
    ? [...label.childNodes]
        .filter((n) => n.nodeType === Node.TEXT_NODE)
        .map((n) => n.textContent)
        .join(' ')
    : '';
  return text.trim() || el.getAttribute('name') || 'a control';
}

/** The control's number; throws a FormError naming the control when it is not one. */
export function readNumber(form: HTMLFormElement, name: string, integer = false): number {
  const el = control(form, name);
  const raw = el.value.trim();
  const value = raw === '' ? NaN : Number(raw);
  const ok = Number.isFinite(value) && (!integer || Number.isInteger(value));
  el.setAttribute('aria-invalid', String(!ok));
  if (!ok) {
    el.focus();
    throw new FormError(
      `${labelOf(el)}: '${raw}' is not ${integer ? 'a whole number' : 'a number'}.`,
    );
  }
  return value;
}

export function readText(form: HTMLFormElement, name: string): string {
  return control(form, name).value;
}

export function writeValue(form: HTMLFormElement, name: string, value: string | number): void {
  control(form, name).value = String(value);
}

export function setStatus(el: HTMLElement, text: string, error = false): void {
  el.textContent = text;
  el.classList.toggle('error', error);
}

/** Short, fixed-width-ish numbers for tables. */
export function fmt(x: number, digits = 4): string {
  if (!Number.isFinite(x)) return String(x);
  if (x !== 0 && (Math.abs(x) >= 1e5 || Math.abs(x) < 1e-3)) return x.toExponential(digits - 1);
  return x.toPrecision(digits);
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** An HTML table from a header row and body rows (cells are escaped). */
export function tableHtml(header: string[], rows: (string | number)[][], caption?: string): string {
  const cells = (r: (string | number)[], tag: string) =>
    `<tr>${r.map((c) => `<${tag}>${escapeHtml(String(c))}</${tag}>`).join('')}</tr>`;
  return (
    `<table>${caption ? `<caption>${escapeHtml(caption)}</caption>` : ''}` +
    `<thead>${cells(header, 'th')}</thead><tbody>${rows.map((r) => cells(r, 'td')).join('')}</tbody></table>`
  );
}
