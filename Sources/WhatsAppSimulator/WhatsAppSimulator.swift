// The WhatsAppSimulator module is filled by its own issue (see `issues`); until then it declares nothing.
