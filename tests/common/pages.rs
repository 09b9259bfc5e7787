//! Reading the dashboard's HTML: a plugin's card, a `data-field` value (as markup or as the text
//! a browser shows), a basic-auth header.

use base64::Engine;

/// The HTML of the card whose `data-plugin` is `name` (up to its closing tag).
pub fn card<'a>(page: &'a str, name: &str) -> &'a str {
    let marker = format!("data-plugin=\"{name}\"");
    let start = page
        .match_indices("<article ")
        .map(|(i, _)| i)
        .find(|&i| page[i..].split('>').next().is_some_and(|tag| tag.contains(&marker)))
        .unwrap_or_else(|| panic!("no card for {name} in the page"));
    let end = page[start..].find("</article>").expect("the card is closed") + start;
    &page[start..end]
}

/// The text of the element carrying `data-field="field"` inside `html`.
pub fn field<'a>(html: &'a str, field: &str) -> &'a str {
    let marker = format!("data-field=\"{field}\"");
    let at = html.find(&marker).unwrap_or_else(|| panic!("no {marker} in {html}"));
    let open_end = html[at..].find('>').expect("tag closes") + at + 1;
    let close = html[open_end..].find('<').expect("element closes") + open_end;
    &html[open_end..close]
}

/// The text a browser shows for the `data-field="field"` element of `name`'s card (unescaped).
pub fn card_text(page: &str, name: &str, field_name: &str) -> String {
    unescape_html(field(card(page, name), field_name))
}

/// Undo HTML escaping (what a browser shows).
pub fn unescape_html(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&#x2F;", "/")
        .replace("&#47;", "/")
        .replace("&amp;", "&")
}

/// The `Authorization` header value for HTTP basic auth.
pub fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}
