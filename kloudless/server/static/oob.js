// The popup (out-of-band) flow's last step: hand the result to the page that opened this
// window, the way the Kloudless Authenticator expects it. The server put the message and the
// one origin it may go to (a trusted domain of the application) in a JSON data block; the
// message is never posted with "*". Without an opener the page's own text tells the person
// what to do.
(function () {
  "use strict";
  var block = document.getElementById("kloudless-result");
  if (!block) return;
  var result = JSON.parse(block.textContent);
  var status = document.getElementById("popup-status");
  if (window.opener && !window.opener.closed) {
    window.opener.postMessage("kloudless:" + JSON.stringify(result.message), result.origin);
    if (status) status.textContent = "Done: you can close this window.";
  } else if (status) {
    status.textContent = "The application's window is gone: close this window and start again there.";
  }
}());
